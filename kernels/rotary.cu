// Rotary embedding (rotate-half layout) forward and backward in one kernel. One block per
// (batch, position): its threads walk the heads x dims of that position, each output element
// reading its own input and its partner half a rotary width away, with the cos/sin row of the
// position (rounded to the dtype first, as the twin does), in float32.
#include "common.cuh"

namespace strata::kernels {

namespace {

using namespace device;

constexpr int kThreads = 128;

// Forward:  out[j] = x[j] c[j] - x[j+h] s[j]        (j < h = R/2)
//           out[j] = x[j] c[j] + x[j-h] s[j]        (h <= j < R)
// Backward (the transpose), x holding the output gradient:
//           out[j] = x[j] c[j] + x[j+h] s[j+h]      (j < h)
//           out[j] = x[j] c[j] - x[j-h] s[j-h]      (h <= j < R)
// Dims R.. pass through.
template <class T>
__global__ void __launch_bounds__(kThreads)
    rotary_kernel(const T* __restrict__ x, int64_t stride_b, int64_t stride_t, int64_t stride_h,
                  const float* __restrict__ cos, const float* __restrict__ sin, T* __restrict__ out, int64_t seq,
                  int64_t heads, int64_t dim, int64_t rot, bool inverse) {
  const int64_t bt = blockIdx.x;
  const int64_t b = bt / seq, t = bt % seq;
  const T* xbt = x + b * stride_b + t * stride_t;
  T* obt = out + bt * heads * dim;
  const float* c = cos + t * rot;
  const float* s = sin + t * rot;
  const int64_t half = rot / 2;
  for (int64_t k = threadIdx.x; k < heads * dim; k += kThreads) {
    const int64_t h = k / dim, j = k % dim;
    const T* xr = xbt + h * stride_h;
    float v = to_float(xr[j]);
    if (j < rot) {
      const bool first = j < half;
      const int64_t partner = first ? j + half : j - half;
      const float sign = first != inverse ? -1.0f : 1.0f;
      const float s_used = round_to<T>(inverse ? s[partner] : s[j]);
      v = v * round_to<T>(c[j]) + sign * to_float(xr[partner]) * s_used;
    }
    obt[k] = from_float<T>(v);
  }
}

}  // namespace

namespace launch {

void rotary(Dtype dtype, const void* x, int64_t stride_b, int64_t stride_t, int64_t stride_h, const float* cos,
            const float* sin, void* out, int64_t batch, int64_t seq, int64_t heads, int64_t dim, int64_t rotary_dim,
            bool inverse, Stream stream) {
  if (batch * seq * heads * dim == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rotary_kernel<T><<<static_cast<unsigned>(batch * seq), kThreads, 0, host::as_cuda(stream)>>>(
        static_cast<const T*>(x), stride_b, stride_t, stride_h, cos, sin, static_cast<T*>(out), seq, heads, dim,
        rotary_dim, inverse);
  });
  host::check_launch(inverse ? "rotary (backward)" : "rotary (forward)");
}

}  // namespace launch

}  // namespace strata::kernels
