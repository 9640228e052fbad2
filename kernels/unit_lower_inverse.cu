// T = (I + L)^-1 for many small float32 matrices, L strictly lower triangular: the chunked delta
// rule's UT transform (one 64 x 64 matrix per chunk and head). One block per matrix, one thread
// per column of T, by forward substitution:
//   T[i][col] = -sum_{j < i} L[i][j] T[j][col]   (i > col),   T[col][col] = 1,   0 above.
// L's strictly lower triangle is staged in shared memory, packed by rows, each row padded to a
// multiple of 4 floats so it is read as float4 broadcasts (every thread walks the same row i).
// Each thread keeps its column of T in registers: the loops are unrolled for a compile-time size
// kC (32, 64 or 128, the matrix size rounded up), so every index into the column is a constant.
// Threads of columns right of i compute row i too (their sum is over zeros) rather than diverge:
// the block's time is that of column 0 anyway. The rows of T are written coalesced.
#include <cuda_pipeline.h>

#include "common.cuh"

namespace strata::kernels {

namespace {

// Floats of row i of the packed triangle (i entries, padded to a multiple of 4).
__host__ __device__ constexpr int padded_row(int i) { return (i + 3) / 4 * 4; }

// Where row i starts in the packed triangle: the sum of padded_row(r) for r < i. Rows come in
// groups of four, 4q .. 4q + 3, of padded lengths 4q, 4q + 4, 4q + 4, 4q + 4 (16q + 12 in all).
__host__ __device__ constexpr int row_offset(int i) {
  const int q = i / 4, r = i % 4;
  return 8 * q * q + 4 * q + (r > 0 ? 4 * q + (r - 1) * (4 * q + 4) : 0);
}

static_assert(row_offset(1) == 0 && row_offset(2) == 4 && row_offset(4) == 12 && row_offset(6) == 24);

// Four floats of shared memory in one access. Written out because NVVM splits a float4 load at
// an offset it knows into four scalar ones, which would quadruple the shared-memory traffic.
__device__ __forceinline__ float4 load_shared4(const float* p) {
  float4 v;
  const auto address = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(address)
               : "memory");
  return v;
}

template <int kC>
__global__ void __launch_bounds__(kC)
    unit_lower_inverse_kernel(const float* __restrict__ a, float* __restrict__ t_out, int64_t count, int n) {
  __shared__ __align__(16) float lower[row_offset(kC)];
  const int col = threadIdx.x;
  for (int64_t m = blockIdx.x; m < count; m += gridDim.x) {
    const float* src = a + m * n * n;
    // Asynchronous copies, all in flight at once and holding no registers; entries outside L
    // (the padding, rows past n) are zero-filled without reading memory.
#pragma unroll 8
    for (int i = 1; i < kC; ++i) {
      if (col >= padded_row(i)) continue;
      const bool inside = col < i && i < n;
      __pipeline_memcpy_async(lower + row_offset(i) + col, inside ? src + i * n + col : src, sizeof(float),
                              inside ? 0 : sizeof(float));
    }
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();

    float t[kC];
#pragma unroll
    for (int i = 0; i < kC; ++i) {
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < i; j += 4) {
        const float4 l = load_shared4(lower + row_offset(i) + j);
        sum = fmaf(l.x, t[j], sum);
        if (j + 1 < i) sum = fmaf(l.y, t[j + 1], sum);
        if (j + 2 < i) sum = fmaf(l.z, t[j + 2], sum);
        if (j + 3 < i) sum = fmaf(l.w, t[j + 3], sum);
      }
      t[i] = i > col ? -sum : (i == col ? 1.0f : 0.0f);
    }

    if (col < n) {
      float* dst = t_out + m * n * n + col;
#pragma unroll
      for (int i = 0; i < kC; ++i)
        if (i < n) dst[i * n] = t[i];
    }
    __syncthreads();  // the next matrix overwrites `lower`
  }
}

template <int kC>
void launch_for(const float* a, float* t, int64_t count, int64_t n, cudaStream_t stream) {
  // One block per matrix; past 2^31 - 1 matrices the blocks loop.
  const auto blocks = static_cast<unsigned>(count < 0x7fffffff ? count : 0x7fffffff);
  unit_lower_inverse_kernel<kC><<<blocks, kC, 0, stream>>>(a, t, count, static_cast<int>(n));
}

}  // namespace

namespace launch {

void unit_lower_inverse(const float* a, float* t, int64_t count, int64_t n, Stream stream) {
  if (n < 1 || n > kMaxUnitLowerInverseSize)
    fail("unit_lower_inverse: matrix size ", n, ", expected 1..", kMaxUnitLowerInverseSize);
  if (count == 0) return;
  const auto s = host::as_cuda(stream);
  if (n <= 32)
    launch_for<32>(a, t, count, n, s);
  else if (n <= 64)
    launch_for<64>(a, t, count, n, s);
  else
    launch_for<128>(a, t, count, n, s);
  host::check_launch("unit_lower_inverse");
}

}  // namespace launch

}  // namespace strata::kernels
