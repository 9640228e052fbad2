// Fused RMSNorm forward and backward. One warp per row: the lanes read the row in 16-byte packs
// (when the row length and pointers allow), reduce in float32 with shuffles, and write the
// output; the forward also keeps rstd per row for the backward. The weight gradient is a sum over
// rows, done by a column-tiled kernel into per-chunk partial sums in a fixed order, so the
// result is deterministic (no atomics).
#include "common.cuh"

namespace strata::kernels {

namespace {

using namespace device;

constexpr int kWarps = 8;  // rows per block in the row kernels
constexpr int kDwCols = 32;
constexpr int kDwRows = 8;

template <class Tx, class Ty, int W>
__global__ void __launch_bounds__(kWarps * 32)
    forward_kernel(const Tx* __restrict__ x, const float* __restrict__ w, Ty* __restrict__ y, float* __restrict__ rstd,
                   int64_t rows, int64_t cols, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const Tx* xr = x + row * cols;
  float sum = 0.0f;
  for (int64_t c = lane * W; c < cols; c += 32 * W) {
    float v[W];
    load<Tx, W>(xr + c, v);
#pragma unroll
    for (int i = 0; i < W; ++i) sum += v[i] * v[i];
  }
  const float r = rsqrtf(warp_sum(sum) / static_cast<float>(cols) + eps);
  if (lane == 0) rstd[row] = r;
  Ty* yr = y + row * cols;
  for (int64_t c = lane * W; c < cols; c += 32 * W) {
    float v[W], wv[W], out[W];
    load<Tx, W>(xr + c, v);
    load<float, W>(w + c, wv);
#pragma unroll
    for (int i = 0; i < W; ++i) out[i] = round_to<Tx>(v[i] * r) * wv[i];
    store<Ty, W>(yr + c, out);
  }
}

template <class Tx, class Ty, int W>
__global__ void __launch_bounds__(kWarps * 32)
    backward_kernel(const Ty* __restrict__ grad_y, const Tx* __restrict__ x, const float* __restrict__ w,
                    const float* __restrict__ rstd, Tx* __restrict__ dx, int64_t rows, int64_t cols) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const Tx* xr = x + row * cols;
  const Ty* gr = grad_y + row * cols;
  float dot = 0.0f;  // sum over the row of (g * w) * x
  for (int64_t c = lane * W; c < cols; c += 32 * W) {
    float v[W], g[W], wv[W];
    load<Tx, W>(xr + c, v);
    load<Ty, W>(gr + c, g);
    load<float, W>(w + c, wv);
#pragma unroll
    for (int i = 0; i < W; ++i) dot += g[i] * wv[i] * v[i];
  }
  const float r = rstd[row];
  const float m = warp_sum(dot) * r * r / static_cast<float>(cols);
  Tx* dxr = dx + row * cols;
  for (int64_t c = lane * W; c < cols; c += 32 * W) {
    float v[W], g[W], wv[W], out[W];
    load<Tx, W>(xr + c, v);
    load<Ty, W>(gr + c, g);
    load<float, W>(w + c, wv);
#pragma unroll
    for (int i = 0; i < W; ++i) out[i] = r * (g[i] * wv[i] - v[i] * m);
    store<Tx, W>(dxr + c, out);
  }
}

// partial[chunk, c] = sum over the chunk's rows of grad_y * x_dtype(x * rstd). Block (32, 8):
// 32 columns, 8 row lanes that stride through the chunk, then a fixed-order sum of the 8.
template <class Tx, class Ty>
__global__ void __launch_bounds__(kDwCols * kDwRows)
    weight_grad_kernel(const Ty* __restrict__ grad_y, const Tx* __restrict__ x, const float* __restrict__ rstd,
                       float* __restrict__ partial, int64_t rows, int64_t cols, int64_t rows_per_chunk) {
  __shared__ float sums[kDwRows][kDwCols + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kDwCols + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  const int64_t end = begin + rows_per_chunk < rows ? begin + rows_per_chunk : rows;
  float acc = 0.0f;
  if (c < cols)
    for (int64_t r = begin + threadIdx.y; r < end; r += kDwRows)
      acc += to_float(grad_y[r * cols + c]) * round_to<Tx>(to_float(x[r * cols + c]) * rstd[r]);
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float total = 0.0f;
#pragma unroll
    for (int k = 0; k < kDwRows; ++k) total += sums[k][threadIdx.x];
    partial[static_cast<int64_t>(blockIdx.y) * cols + c] = total;
  }
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kWarps - 1) / kWarps); }

}  // namespace

namespace launch {

void rms_norm_forward(Dtype x_dtype, Dtype y_dtype, const void* x, const float* w, void* y, float* rstd, int64_t rows,
                      int64_t cols, float eps, Stream stream) {
  if (rows == 0) return;
  host::dispatch_in_out(x_dtype, y_dtype, "rms_norm_forward", [&](auto x_tag, auto y_tag) {
    using Tx = typename decltype(x_tag)::type;
    using Ty = typename decltype(y_tag)::type;
    constexpr int W = host::pack_width<Tx>;
    const bool packed = cols % W == 0 && host::aligned(x, sizeof(Tx) * W) && host::aligned(y, sizeof(Ty) * W) &&
                        host::aligned(w, sizeof(float) * W);
    const auto* xp = static_cast<const Tx*>(x);
    auto* yp = static_cast<Ty*>(y);
    if (packed)
      forward_kernel<Tx, Ty, W><<<row_blocks(rows), kWarps * 32, 0, host::as_cuda(stream)>>>(xp, w, yp, rstd, rows,
                                                                                             cols, eps);
    else
      forward_kernel<Tx, Ty, 1><<<row_blocks(rows), kWarps * 32, 0, host::as_cuda(stream)>>>(xp, w, yp, rstd, rows,
                                                                                             cols, eps);
  });
  host::check_launch("rms_norm_forward");
}

void rms_norm_backward(Dtype x_dtype, Dtype y_dtype, const void* grad_y, const void* x, const float* w,
                       const float* rstd, void* dx, float* dw_partial, int64_t chunks, int64_t rows, int64_t cols,
                       Stream stream) {
  if (rows == 0) return;
  host::dispatch_in_out(x_dtype, y_dtype, "rms_norm_backward", [&](auto x_tag, auto y_tag) {
    using Tx = typename decltype(x_tag)::type;
    using Ty = typename decltype(y_tag)::type;
    constexpr int W = host::pack_width<Tx>;
    const bool packed = cols % W == 0 && host::aligned(x, sizeof(Tx) * W) && host::aligned(dx, sizeof(Tx) * W) &&
                        host::aligned(grad_y, sizeof(Ty) * W) && host::aligned(w, sizeof(float) * W);
    const auto* gp = static_cast<const Ty*>(grad_y);
    const auto* xp = static_cast<const Tx*>(x);
    auto* dxp = static_cast<Tx*>(dx);
    const auto cuda_stream = host::as_cuda(stream);
    if (packed)
      backward_kernel<Tx, Ty, W><<<row_blocks(rows), kWarps * 32, 0, cuda_stream>>>(gp, xp, w, rstd, dxp, rows, cols);
    else
      backward_kernel<Tx, Ty, 1><<<row_blocks(rows), kWarps * 32, 0, cuda_stream>>>(gp, xp, w, rstd, dxp, rows, cols);
    host::check_launch("rms_norm_backward (input gradient)");
    const dim3 grid(static_cast<unsigned>((cols + kDwCols - 1) / kDwCols), static_cast<unsigned>(chunks));
    weight_grad_kernel<Tx, Ty><<<grid, dim3(kDwCols, kDwRows), 0, cuda_stream>>>(gp, xp, rstd, dw_partial, rows, cols,
                                                                                 (rows + chunks - 1) / chunks);
  });
  host::check_launch("rms_norm_backward (weight gradient)");
}

}  // namespace launch

}  // namespace strata::kernels
