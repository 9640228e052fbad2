// Rotary embedding (rotate-half layout) forward and backward in one kernel. Each thread owns W
// consecutive dims j of the first rotary half of one (batch, position, head) row together with
// their partners j + R/2, so it reads and writes two aligned W-wide packs and needs no other
// thread's values; the dims past R are copied in packs of W as well. W is 16 bytes of the dtype
// where the sizes and strides allow it, 1 otherwise. cos/sin rows (rounded to the dtype first,
// as the twin does) are shared by the heads of a position and stay in cache; math in float32.
#include "common.cuh"

namespace strata::kernels {

namespace {

using namespace device;

constexpr int kThreads = 256;

// Forward:  out[j] = x[j] c[j] - x[j+h] s[j]        (j < h = R/2)
//           out[j] = x[j] c[j] + x[j-h] s[j]        (h <= j < R)
// Backward (the transpose), x holding the output gradient:
//           out[j] = x[j] c[j] + x[j+h] s[j+h]      (j < h)
//           out[j] = x[j] c[j] - x[j-h] s[j-h]      (h <= j < R)
// Dims R.. pass through.
template <class T, int W>
__global__ void __launch_bounds__(kThreads)
    rotary_kernel(const T* __restrict__ x, int64_t stride_b, int64_t stride_t, int64_t stride_h,
                  const float* __restrict__ cos, const float* __restrict__ sin, T* __restrict__ out, int64_t seq,
                  int64_t heads, int64_t dim, int64_t rot, bool inverse, int64_t units) {
  const int64_t half = rot / 2;
  const int64_t pair_units = half / W, units_per_row = pair_units + (dim - rot) / W;
  for (int64_t u = blockIdx.x * int64_t{kThreads} + threadIdx.x; u < units; u += int64_t{gridDim.x} * kThreads) {
    const int64_t row = u / units_per_row, unit = u % units_per_row;
    const int64_t h = row % heads, bt = row / heads;
    const int64_t t = bt % seq, b = bt / seq;
    const T* xr = x + b * stride_b + t * stride_t + h * stride_h;
    T* orow = out + row * dim;
    if (unit >= pair_units) {  // a pass-through pack
      const int64_t j = rot + (unit - pair_units) * W;
      *reinterpret_cast<Pack<T, W>*>(orow + j) = *reinterpret_cast<const Pack<T, W>*>(xr + j);
      continue;
    }
    const int64_t j = unit * W;
    float lo[W], hi[W], out_lo[W], out_hi[W];
    load<T, W>(xr + j, lo);
    load<T, W>(xr + j + half, hi);
    const float* c = cos + t * rot + j;
    const float* s = sin + t * rot + j;
#pragma unroll
    for (int i = 0; i < W; ++i) {
      const float c_lo = round_to<T>(c[i]), c_hi = round_to<T>(c[i + half]);
      const float s_lo = round_to<T>(s[i]), s_hi = round_to<T>(s[i + half]);
      if (inverse) {
        out_lo[i] = lo[i] * c_lo + hi[i] * s_hi;
        out_hi[i] = hi[i] * c_hi - lo[i] * s_lo;
      } else {
        out_lo[i] = lo[i] * c_lo - hi[i] * s_lo;
        out_hi[i] = hi[i] * c_hi + lo[i] * s_hi;
      }
    }
    store<T, W>(orow + j, out_lo);
    store<T, W>(orow + j + half, out_hi);
  }
}

template <class T, int W>
void launch_rotary(const T* x, int64_t stride_b, int64_t stride_t, int64_t stride_h, const float* cos,
                   const float* sin, T* out, int64_t batch, int64_t seq, int64_t heads, int64_t dim, int64_t rot,
                   bool inverse, cudaStream_t stream) {
  const int64_t units = batch * seq * heads * (rot / 2 / W + (dim - rot) / W);
  const int64_t blocks = std::min<int64_t>((units + kThreads - 1) / kThreads, int64_t{1} << 20);
  rotary_kernel<T, W><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, stride_b, stride_t, stride_h, cos, sin,
                                                                             out, seq, heads, dim, rot, inverse, units);
}

}  // namespace

namespace launch {

void rotary(Dtype dtype, const void* x, int64_t stride_b, int64_t stride_t, int64_t stride_h, const float* cos,
            const float* sin, void* out, int64_t batch, int64_t seq, int64_t heads, int64_t dim, int64_t rotary_dim,
            bool inverse, Stream stream) {
  if (batch * seq * heads * dim == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int kPack = 16 / sizeof(T);
    // Packs need every pack start aligned: the half width, the pass-through width, the strides
    // and both base pointers in whole packs.
    const bool packed = (rotary_dim / 2) % kPack == 0 && (dim - rotary_dim) % kPack == 0 && stride_b % kPack == 0 &&
                        stride_t % kPack == 0 && stride_h % kPack == 0 && dim % kPack == 0 &&
                        reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
    const auto* xt = static_cast<const T*>(x);
    auto* ot = static_cast<T*>(out);
    if (packed)
      launch_rotary<T, kPack>(xt, stride_b, stride_t, stride_h, cos, sin, ot, batch, seq, heads, dim, rotary_dim,
                              inverse, host::as_cuda(stream));
    else
      launch_rotary<T, 1>(xt, stride_b, stride_t, stride_h, cos, sin, ot, batch, seq, heads, dim, rotary_dim, inverse,
                          host::as_cuda(stream));
  });
  host::check_launch(inverse ? "rotary (backward)" : "rotary (forward)");
}

}  // namespace launch

}  // namespace strata::kernels
