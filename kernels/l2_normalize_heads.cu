// Gated DeltaNet's q and k preparation in one pass each way (strata::kernels::l2_normalize_heads):
// every key head's row l2-normalised and scaled in float32, rounded once, and written once for
// each value head that reads it, heads-first as the chunked delta rule reads q and k. One warp
// owns one row of x (D <= 256: up to 8 elements a lane, lane + 32 j), so the row's sums are warp
// shuffles and x is read once; the backward sums the row's repeated heads' gradients in registers,
// their rows' loads in flight two at a time. bench/cpu_emulation/run.sh checks both on the CPU.
#include <limits>

#include "common.cuh"
#include "strata/kernels/l2_normalize_heads_launch.h"

namespace strata::kernels {

namespace {

using namespace device;
using launch::RowStrides;

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;
constexpr int kPerLane = static_cast<int>(launch::kMaxL2NormalizeHeadDim / 32);

// Where a warp's row (b, t, key head) lies, worked out once a row in 32-bit divisions (rows_of
// keeps the rows, idle warps' included, under 2^31), not in 64-bit ones again for every repeated
// head's gradient row.
struct RowPlace {
  int b, t, key_head;
  __device__ __forceinline__ RowPlace(int row, int seq, int key_heads) {
    const int bt = row / key_heads;
    key_head = row - bt * key_heads;
    b = bt / seq;
    t = bt - b * seq;
  }
  // Where head `head` of this row's (b, t) starts in a strided [B, T, H, D] view.
  __device__ __forceinline__ int64_t offset(RowStrides s, int64_t head) const {
    return b * s.batch + t * s.seq + head * s.head;
  }
};

// A row's elements lane + 32 j (zeros past dim).
template <class T>
__device__ __forceinline__ void load_elements(const T* row, int lane, int64_t dim, float (&v)[kPerLane]) {
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int64_t e = lane + 32 * j;
    v[j] = e < dim ? to_float(row[e]) : 0.0f;
  }
}

// 1 / sqrt(sum of the row's squares + eps), in every lane.
__device__ __forceinline__ float inverse_norm(const float (&v)[kPerLane], float eps) {
  float squares = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) squares += v[j] * v[j];
  return rsqrtf(warp_sum(squares) + eps);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ x, RowStrides xs, T* __restrict__ out, int rows, int seq, int key_heads,
                   int repeats, int64_t dim, float scale, float eps) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp: no shuffle is left waiting
  const int lane = threadIdx.x % 32;
  const RowPlace at(row, seq, key_heads);
  float v[kPerLane];
  load_elements(x + at.offset(xs, at.key_head), lane, dim, v);
  const float factor = scale * inverse_norm(v, eps);
  const int64_t heads = static_cast<int64_t>(key_heads) * repeats;
  for (int r = 0; r < repeats; ++r) {
    T* o = out + ((at.b * heads + static_cast<int64_t>(at.key_head) * repeats + r) * seq + at.t) * dim;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int64_t e = lane + 32 * j;
      if (e < dim) o[e] = from_float<T>(v[j] * factor);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* __restrict__ grad_out, RowStrides gs, const T* __restrict__ x, RowStrides xs,
                    T* __restrict__ grad_x, int rows, int seq, int key_heads, int repeats, int64_t dim, float scale,
                    float eps) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const RowPlace at(row, seq, key_heads);
  float v[kPerLane], dn[kPerLane];
  load_elements(x + at.offset(xs, at.key_head), lane, dim, v);
  // The repeated heads' gradient rows summed in order, loaded two at a time so that their loads
  // (and x's) are in flight together rather than one row's latency after another's.
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) dn[j] = 0.0f;
  const int64_t first = static_cast<int64_t>(at.key_head) * repeats;
  int r = 0;
  for (; r + 2 <= repeats; r += 2) {
    float a[kPerLane], c[kPerLane];
    load_elements(grad_out + at.offset(gs, first + r), lane, dim, a);
    load_elements(grad_out + at.offset(gs, first + r + 1), lane, dim, c);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) dn[j] = dn[j] + a[j] + c[j];
  }
  if (r < repeats) {
    float a[kPerLane];
    load_elements(grad_out + at.offset(gs, first + r), lane, dim, a);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) dn[j] += a[j];
  }
  const float inv = inverse_norm(v, eps);
  float dot = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) dot += dn[j] * v[j];
  const float cubed = inv * inv * inv * warp_sum(dot);
  T* out = grad_x + static_cast<int64_t>(row) * dim;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int64_t e = lane + 32 * j;
    if (e < dim) out[e] = from_float<T>(scale * (inv * dn[j] - cubed * v[j]));
  }
}

unsigned blocks_for(int rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

// The kernels' rows, B T Hk, as the 32-bit count they index by.
int rows_of(const char* fn, int64_t batch, int64_t seq, int64_t key_heads) {
  const int64_t rows = batch * seq * key_heads;
  constexpr int64_t kMaxRows = std::numeric_limits<int>::max() - kRowsPerBlock;
  if (rows > kMaxRows)
    fail(fn, ": ", batch, " x ", seq, " x ", key_heads, " = ", rows, " rows of x; the kernels take at most ", kMaxRows);
  return static_cast<int>(rows);
}

}  // namespace

namespace launch {

void l2_normalize_heads_forward(Dtype dtype, const void* x, RowStrides x_strides, void* out, int64_t batch, int64_t seq,
                                int64_t key_heads, int64_t repeats, int64_t dim, float scale, float eps,
                                Stream stream) {
  const int rows = rows_of("l2_normalize_heads_forward", batch, seq, key_heads);
  if (rows == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_kernel<T><<<blocks_for(rows), kThreads, 0, host::as_cuda(stream)>>>(
        static_cast<const T*>(x), x_strides, static_cast<T*>(out), rows, static_cast<int>(seq), static_cast<int>(key_heads),
        static_cast<int>(repeats), dim, scale, eps);
  });
  host::check_launch("l2_normalize_heads_forward");
}

void l2_normalize_heads_backward(Dtype dtype, const void* grad_out, RowStrides grad_strides, const void* x,
                                 RowStrides x_strides, void* grad_x, int64_t batch, int64_t seq, int64_t key_heads,
                                 int64_t repeats, int64_t dim, float scale, float eps, Stream stream) {
  const int rows = rows_of("l2_normalize_heads_backward", batch, seq, key_heads);
  if (rows == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    backward_kernel<T><<<blocks_for(rows), kThreads, 0, host::as_cuda(stream)>>>(
        static_cast<const T*>(grad_out), grad_strides, static_cast<const T*>(x), x_strides, static_cast<T*>(grad_x),
        rows, static_cast<int>(seq), static_cast<int>(key_heads), static_cast<int>(repeats), dim, scale, eps);
  });
  host::check_launch("l2_normalize_heads_backward");
}

}  // namespace launch

}  // namespace strata::kernels
