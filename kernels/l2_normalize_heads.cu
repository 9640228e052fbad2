// Gated DeltaNet's q and k preparation in one pass each way (strata::kernels::l2_normalize_heads):
// every key head's row l2-normalised and scaled in float32, rounded once, and written once for
// each value head that reads it, heads-first as the chunked delta rule reads q and k. One warp
// owns one row of x (D <= 256: up to 8 elements a lane, lane + 32 j), so the row's sums are warp
// shuffles and x is read once; the backward sums the row's repeated heads' gradients in registers.
#include "common.cuh"
#include "strata/kernels/l2_normalize_heads_launch.h"

namespace strata::kernels {

namespace {

using namespace device;
using launch::RowStrides;

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;
constexpr int kPerLane = static_cast<int>(launch::kMaxL2NormalizeHeadDim / 32);

// Where row `row` ((b, t, h) in that order) of a strided [B, T, H, D] view starts.
__device__ __forceinline__ int64_t row_offset(RowStrides s, int64_t row, int64_t seq, int64_t heads) {
  const int64_t bt = row / heads;
  return (bt / seq) * s.batch + (bt % seq) * s.seq + (row % heads) * s.head;
}

// Loads a row's elements lane + 32 j (zeros past dim) and returns 1 / sqrt(sum of squares + eps).
template <class T>
__device__ __forceinline__ float load_row(const T* row, int lane, int64_t dim, float eps, float (&v)[kPerLane]) {
  float squares = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int64_t e = lane + 32 * j;
    v[j] = e < dim ? to_float(row[e]) : 0.0f;
    squares += v[j] * v[j];
  }
  return rsqrtf(warp_sum(squares) + eps);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ x, RowStrides xs, T* __restrict__ out, int64_t rows, int64_t seq,
                   int64_t key_heads, int64_t repeats, int64_t dim, float scale, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp: no shuffle is left waiting
  const int lane = threadIdx.x % 32;
  float v[kPerLane];
  const float factor = scale * load_row(x + row_offset(xs, row, seq, key_heads), lane, dim, eps, v);
  const int64_t bt = row / key_heads, b = bt / seq, t = bt % seq, key_head = row % key_heads;
  const int64_t heads = key_heads * repeats;
  for (int64_t r = 0; r < repeats; ++r) {
    T* o = out + ((b * heads + key_head * repeats + r) * seq + t) * dim;
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
                    T* __restrict__ grad_x, int64_t rows, int64_t seq, int64_t key_heads, int64_t repeats, int64_t dim,
                    float scale, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  float v[kPerLane], dn[kPerLane];
  const float r = load_row(x + row_offset(xs, row, seq, key_heads), lane, dim, eps, v);
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) dn[j] = 0.0f;
  const int64_t bt = row / key_heads, key_head = row % key_heads, heads = key_heads * repeats;
  for (int64_t h = key_head * repeats; h < (key_head + 1) * repeats; ++h) {
    const T* g = grad_out + row_offset(gs, bt * heads + h, seq, heads);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int64_t e = lane + 32 * j;
      if (e < dim) dn[j] += to_float(g[e]);
    }
  }
  float dot = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) dot += dn[j] * v[j];
  const float cubed = r * r * r * warp_sum(dot);
  T* out = grad_x + row * dim;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int64_t e = lane + 32 * j;
    if (e < dim) out[e] = from_float<T>(scale * (r * dn[j] - cubed * v[j]));
  }
}

unsigned blocks_for(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

namespace launch {

void l2_normalize_heads_forward(Dtype dtype, const void* x, RowStrides x_strides, void* out, int64_t batch, int64_t seq,
                                int64_t key_heads, int64_t repeats, int64_t dim, float scale, float eps,
                                Stream stream) {
  const int64_t rows = batch * seq * key_heads;
  if (rows == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_kernel<T><<<blocks_for(rows), kThreads, 0, host::as_cuda(stream)>>>(
        static_cast<const T*>(x), x_strides, static_cast<T*>(out), rows, seq, key_heads, repeats, dim, scale, eps);
  });
  host::check_launch("l2_normalize_heads_forward");
}

void l2_normalize_heads_backward(Dtype dtype, const void* grad_out, RowStrides grad_strides, const void* x,
                                 RowStrides x_strides, void* grad_x, int64_t batch, int64_t seq, int64_t key_heads,
                                 int64_t repeats, int64_t dim, float scale, float eps, Stream stream) {
  const int64_t rows = batch * seq * key_heads;
  if (rows == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    backward_kernel<T><<<blocks_for(rows), kThreads, 0, host::as_cuda(stream)>>>(
        static_cast<const T*>(grad_out), grad_strides, static_cast<const T*>(x), x_strides, static_cast<T*>(grad_x),
        rows, seq, key_heads, repeats, dim, scale, eps);
  });
  host::check_launch("l2_normalize_heads_backward");
}

}  // namespace launch

}  // namespace strata::kernels
