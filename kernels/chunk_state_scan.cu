// The sequential part of the chunked gated delta rule: the state hand-off from chunk to chunk,
// forward and backward, as one scan (see launch::chunk_state_scan for the recurrence).
//
// The recurrence never mixes value columns, so each block owns one (sequence, head) and 16
// value columns and walks the chunks in order while every intra-chunk product stays batched in
// cuBLAS outside. A thread holds one column of a group of rows: its slice of the Dk x 16 carried
// value in registers (with a shared copy for the y = a X products), and its rows of y. Each
// chunk's two C x Dk matrices are staged in shared memory and read as broadcasts: the threads of
// one column group read the same entries. The copies are asynchronous and pipelined without a
// second buffer: a[n + 1] streams in while b[n] is in use, and b[n + 1] while a[n + 1] is, so
// every load overlaps a phase of arithmetic. Narrow column slices give two blocks per SM. With
// segments (packed documents) a block owns one segment of one (sequence, head) pair instead: the
// segments of a pair are independent scans, so they run in parallel.
#include <cuda_pipeline.h>

#include <algorithm>

#include "common.cuh"

namespace strata::kernels::device {
namespace {

constexpr int kColumns = 16;  // value columns per block
constexpr int kGroups = 16;   // row groups per block
constexpr int kThreads = kColumns * kGroups;

// Starts copying `count` floats (a multiple of 4, both pointers 16-byte aligned) into shared
// memory as one commit group of the thread's pipeline; from == nullptr commits an empty group,
// so that every step commits the same number and the waits below count alike.
__device__ __forceinline__ void stage_async(const float* from, float* to, int count) {
  if (from != nullptr)
    for (int i = threadIdx.x; i < count / 4; i += kThreads) __pipeline_memcpy_async(to + 4 * i, from + 4 * i, 16);
  __pipeline_commit();
}

// kStateRows: rows of the carried value each group holds (group g: rows [g kStateRows,
// (g + 1) kStateRows)), a multiple of 4 so that b's entries for them are read as a float4;
// kOutRows: rows of y per thread (group g: rows g, g + kGroups, ...). Rows past key_dim / chunk
// are skipped.
template <int kStateRows, int kOutRows>
__global__ void __launch_bounds__(kThreads)
    chunk_state_scan_kernel(const float* __restrict__ x0, const float* __restrict__ y_init, const float* __restrict__ a,
                            const float* __restrict__ b, const float* __restrict__ decay,
                            const float* __restrict__ x_add, const int64_t* __restrict__ chunk_offsets, int pairs,
                            float* __restrict__ states, float* __restrict__ y, float* __restrict__ x_final, int chunks,
                            int chunk, int key_dim, int value_dim, float y_sign, float x_sign, bool reverse) {
  static_assert(kStateRows % 4 == 0);
  extern __shared__ float4 shared_storage[];
  float* x_shared = reinterpret_cast<float*>(shared_storage);  // [key_dim][kColumns]
  float* a_shared = x_shared + key_dim * kColumns;             // [chunk][key_dim]
  float* b_shared = a_shared + chunk * key_dim;                // [chunk][key_dim]
  float* y_shared = b_shared + chunk * key_dim;                // [chunk][kColumns]

  const int lane = threadIdx.x % kColumns, group = threadIdx.x / kColumns;
  const int column = blockIdx.y * kColumns + lane;
  const bool live = column < value_dim;
  const int first_row = group * kStateRows;
  // blockIdx.x indexes x0 and x_final: a pair, or (segment, pair) as segment * pairs + pair.
  const int64_t carried = blockIdx.x;
  const int64_t pair = chunk_offsets != nullptr ? carried % pairs : carried;
  // This block's chunks, first .. first + count - 1 of its pair (clamped to the pair's chunks).
  int64_t first = 0, count = chunks;
  if (chunk_offsets != nullptr) {
    const int64_t segment = carried / pairs;
    first = min(max(chunk_offsets[segment], int64_t{0}), static_cast<int64_t>(chunks));
    count = min(max(chunk_offsets[segment + 1], first), static_cast<int64_t>(chunks)) - first;
  }
  const int64_t state_size = static_cast<int64_t>(key_dim) * value_dim;
  const int64_t matrix_size = static_cast<int64_t>(chunk) * key_dim;
  const int64_t out_size = static_cast<int64_t>(chunk) * value_dim;

  float x[kStateRows];
#pragma unroll
  for (int m = 0; m < kStateRows; ++m) {
    const int r = first_row + m;
    x[m] = r < key_dim && live ? x0[carried * state_size + static_cast<int64_t>(r) * value_dim + column] : 0.0f;
    if (r < key_dim) x_shared[r * kColumns + lane] = x[m];
  }

  // Chunk index (into the [pairs, chunks] arrays) of the step-th visited chunk.
  const auto chunk_at = [&](int64_t step) { return pair * chunks + first + (reverse ? count - 1 - step : step); };
  stage_async(count > 0 ? a + chunk_at(0) * matrix_size : nullptr, a_shared, chunk * key_dim);
  stage_async(count > 0 ? b + chunk_at(0) * matrix_size : nullptr, b_shared, chunk * key_dim);

  for (int64_t step = 0; step < count; ++step) {
    const int64_t n = chunk_at(step);
    const bool has_next = step + 1 < count;
    if (live) {
#pragma unroll
      for (int m = 0; m < kStateRows; ++m)
        if (first_row + m < key_dim) states[n * state_size + static_cast<int64_t>(first_row + m) * value_dim + column] = x[m];
    }
    // y_init's entries are loaded now so their latency hides behind the product.
    float y_start[kOutRows];
#pragma unroll
    for (int m = 0; m < kOutRows; ++m) {
      const int i = group + m * kGroups;
      y_start[m] = i < chunk && live ? y_init[n * out_size + static_cast<int64_t>(i) * value_dim + column] : 0.0f;
    }
    __pipeline_wait_prior(1);  // a[n] landed (b[n] may still be in flight)
    __syncthreads();           // everyone's part of a[n] visible, x_shared current

    // y = y_init + y_sign a[n] X, reading a's rows four entries at a time.
    float acc[kOutRows] = {};
    for (int r = 0; r < key_dim; r += 4) {
      const float x_r[4] = {x_shared[r * kColumns + lane], x_shared[(r + 1) * kColumns + lane],
                            x_shared[(r + 2) * kColumns + lane], x_shared[(r + 3) * kColumns + lane]};
#pragma unroll
      for (int m = 0; m < kOutRows; ++m) {
        const int i = group + m * kGroups;
        if (i < chunk) {
          const float4 row = *reinterpret_cast<const float4*>(a_shared + i * key_dim + r);
          acc[m] += row.x * x_r[0] + row.y * x_r[1] + row.z * x_r[2] + row.w * x_r[3];
        }
      }
    }
#pragma unroll
    for (int m = 0; m < kOutRows; ++m) {
      const int i = group + m * kGroups;
      if (i < chunk) {
        const float value = live ? y_start[m] + y_sign * acc[m] : 0.0f;
        y_shared[i * kColumns + lane] = value;
        if (live) y[n * out_size + static_cast<int64_t>(i) * value_dim + column] = value;
      }
    }
    float added[kStateRows] = {};
    if (x_add != nullptr && live) {
#pragma unroll
      for (int m = 0; m < kStateRows; ++m)
        if (first_row + m < key_dim) added[m] = x_add[n * state_size + static_cast<int64_t>(first_row + m) * value_dim + column];
    }
    __pipeline_wait_prior(0);  // b[n] landed
    __syncthreads();           // y_shared written, b[n] visible, a[n] no longer read
    stage_async(has_next ? a + chunk_at(step + 1) * matrix_size : nullptr, a_shared, chunk * key_dim);

    // X = decay X + x_sign b[n]^T y + x_add[n], each group's entries of b read four at a time.
    float update[kStateRows] = {};
    for (int c = 0; c < chunk; ++c) {
      const float y_c = y_shared[c * kColumns + lane];
#pragma unroll
      for (int m = 0; m < kStateRows; m += 4)
        if (first_row + m < key_dim) {
          const float4 col = *reinterpret_cast<const float4*>(b_shared + c * key_dim + first_row + m);
          update[m] += col.x * y_c;
          update[m + 1] += col.y * y_c;
          update[m + 2] += col.z * y_c;
          update[m + 3] += col.w * y_c;
        }
    }
    const float d = decay[n];
#pragma unroll
    for (int m = 0; m < kStateRows; ++m) {
      const int r = first_row + m;
      if (r < key_dim) {
        x[m] = d * x[m] + x_sign * update[m] + added[m];
        x_shared[r * kColumns + lane] = x[m];
      }
    }
    __syncthreads();  // x_shared current, b[n] no longer read
    stage_async(has_next ? b + chunk_at(step + 1) * matrix_size : nullptr, b_shared, chunk * key_dim);
  }

  if (live) {
#pragma unroll
    for (int m = 0; m < kStateRows; ++m)
      if (first_row + m < key_dim)
        x_final[carried * state_size + static_cast<int64_t>(first_row + m) * value_dim + column] = x[m];
  }
}

template <int kStateRows, int kOutRows>
void launch_scan(const float* x0, const float* y_init, const float* a, const float* b, const float* decay,
                 const float* x_add, const int64_t* chunk_offsets, int64_t segments, float* states, float* y,
                 float* x_final, int64_t pairs, int64_t chunks, int64_t chunk, int64_t key_dim, int64_t value_dim,
                 float y_sign, float x_sign, bool reverse, cudaStream_t stream) {
  const auto kernel = chunk_state_scan_kernel<kStateRows, kOutRows>;
  static_assert(kColumns == 16, "launch::chunk_state_scan_shared_bytes counts 16 columns");
  const auto shared_bytes = static_cast<std::size_t>(launch::chunk_state_scan_shared_bytes(key_dim, chunk));
  if (shared_bytes > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes)) !=
          cudaSuccess)
    fail("chunk_state_scan: ", shared_bytes, " bytes of shared memory for key_dim ", key_dim, " and chunk ", chunk,
         " exceed what this GPU gives a block");
  const int64_t blocks = chunk_offsets != nullptr ? segments * pairs : pairs;
  if (blocks > 0x7fffffff || chunks > 0x7fffffff)
    fail("chunk_state_scan: ", blocks, " scans of ", chunks, " chunks; expected at most 2^31 - 1 of each");
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>((value_dim + kColumns - 1) / kColumns));
  kernel<<<grid, kThreads, shared_bytes, stream>>>(x0, y_init, a, b, decay, x_add, chunk_offsets,
                                                   static_cast<int>(pairs), states, y, x_final,
                                                   static_cast<int>(chunks), static_cast<int>(chunk),
                                                   static_cast<int>(key_dim), static_cast<int>(value_dim), y_sign,
                                                   x_sign, reverse);
}

}  // namespace
}  // namespace strata::kernels::device

namespace strata::kernels::launch {

void chunk_state_scan(const float* x0, const float* y_init, const float* a, const float* b, const float* decay,
                      const float* x_add, const int64_t* chunk_offsets, int64_t segments, float* states, float* y,
                      float* x_final, int64_t pairs, int64_t chunks, int64_t chunk, int64_t key_dim,
                      int64_t value_dim, float y_sign, float x_sign, bool reverse, Stream stream) {
  if (!chunk_state_scan_fits(key_dim, chunk))
    fail("chunk_state_scan: key_dim ", key_dim, " and chunk ", chunk, " do not fit: expected key_dim a multiple of 4 up to ",
         kMaxScanKeyDim, ", chunk up to ", kMaxScanChunk, ", and ", chunk_state_scan_shared_bytes(key_dim, chunk),
         " bytes of shared memory within 227 KB");
  for (const void* p : {static_cast<const void*>(a), static_cast<const void*>(b)})
    if (!host::aligned(p, 16)) fail("chunk_state_scan: the chunk matrices must be 16-byte aligned");
  if (chunk_offsets != nullptr && segments < 1) fail("chunk_state_scan: ", segments, " segments; expected at least 1");
  if (pairs == 0 || value_dim == 0) return;
  const auto s = static_cast<cudaStream_t>(stream);
  // Rows per group: key_dim / 16 rounded up to the instantiated 8 or 16; chunk / 16 to 4 or 8.
  const bool wide_state = key_dim > 8 * device::kGroups, long_chunk = chunk > 4 * device::kGroups;
  const auto run = [&](auto launcher) {
    launcher(x0, y_init, a, b, decay, x_add, chunk_offsets, segments, states, y, x_final, pairs, chunks, chunk,
             key_dim, value_dim, y_sign, x_sign, reverse, s);
  };
  if (wide_state)
    long_chunk ? run(device::launch_scan<16, 8>) : run(device::launch_scan<16, 4>);
  else
    long_chunk ? run(device::launch_scan<8, 8>) : run(device::launch_scan<8, 4>);
  host::check_launch("chunk_state_scan");
}

}  // namespace strata::kernels::launch
