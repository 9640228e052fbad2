#pragma once
// The raw CUDA launchers of mHC's fused half boundary (kernels/hc_boundary.cu; strata::kernels::
// hc_boundary is the ATen-facing op). Same conventions as launch.h: device pointers, contiguous
// arrays, float32 maps, asynchronous on `stream`; a CPU-only build's stubs throw. Kept out of
// launch.h so that the other kernels' wrappers do not recompile for them.
#include "strata/kernels/launch.h"

namespace strata::kernels::launch {

// Half i's combine, with the RMS factor half i+1's projection needs: out[t, k, :] = sum_j
// res[t, j, k] streams[t, j, :] + post[t, k] branch[t, :] (float32 math, one rounding to the
// dtype), and rstd[t] = rsqrt(mean over the n * hidden stored values of out[t]^2 + eps).
void hc_boundary_combine(Dtype dtype, const void* streams, const void* branch, const float* post, const float* res,
                         void* out, float* rstd, int64_t tokens, int64_t n, int64_t hidden, float eps, Stream stream);

// Whether hc_boundary_forward takes n streams of `hidden`: a step of the kernel takes 128 columns
// of each stream for n <= 4, 64 above.
inline bool hc_boundary_forward_fits(int64_t n, int64_t hidden) {
  return n >= 1 && n <= kMaxHyperStreams && hidden % (n <= 4 ? 128 : 64) == 0;
}

// hc_boundary_combine, the projection's product, hc_boundary_collapse's per-token work and the
// collapse in one kernel, for bfloat16 streams (kernels/hc_boundary_forward.cu): writes the new
// streams, the next input, f [tokens, M] (= new_streams[t] . fn[m] * rstd[t], the product of the
// bfloat16 values summed in float32) and rstd [tokens]. fn [M, n hidden] in bfloat16; every
// bfloat16 array 16-byte aligned; hc_boundary_forward_fits(n, hidden).
void hc_boundary_forward(const void* streams, const void* branch, const float* post, const float* res, const void* fn,
                         const float* base, const float* scale, float norm_eps, float eps, void* new_streams,
                         void* next_input, float* f, float* rstd, int64_t tokens, int64_t n, int64_t hidden,
                         Stream stream);

// The next half's input from cuBLAS's projection product [tokens, M] (M = 2n + n^2, in the
// dtype): f = product * rstd[t] (float32, written out for the next post and res maps), pre_k =
// sigmoid(scale[0] f_k + base_k) + eps, out[t] = sum_j pre_j streams[t, j] (the dtype). base [M]
// and scale [3] float32.
void hc_boundary_collapse(Dtype dtype, const void* streams, const void* product, const float* rstd, const float* base,
                          const float* scale, float eps, void* out, float* f, int64_t tokens, int64_t n, int64_t hidden,
                          Stream stream);

// The backward's per-token part: with dL/dpre_k = <grad_input[t], new_streams[t, k]> (float32,
// fixed order; zero for a null grad_input) and s_k = pre_k - eps, dL/dlogit_k = dL/dpre_k s_k
// (1 - s_k) and dL/df = grad_f (null: zero) + scale[0] dL/dlogit in the pre columns. Writes the
// projection's a = rstd dL/df [tokens, M] (in the dtype), c[t] = rstd^2 / (n hidden) sum_m dL/df_m
// f_m, pre [tokens, n], and dL/dlogit and dL/dlogit f [tokens, n] (base's and scale[0]'s terms).
void hc_boundary_projection_grad(Dtype dtype, const void* grad_input, const void* new_streams, const float* f,
                                 const float* grad_f, const float* rstd, const float* base, const float* scale,
                                 float eps, void* a, float* c, float* pre, float* grad_logit, float* grad_logit_f,
                                 int64_t tokens, int64_t n, int64_t hidden, Stream stream);

// base's [M] and scale's [3] gradients through pre from hc_boundary_projection_grad's per-token
// terms: grad_base[k] = sum_t grad_logit[t, k] for k < n (zero above), grad_scale[0] = sum over
// tokens and k of grad_logit_f (scale[1] and scale[2]: zero). Fixed-order sums.
void hc_boundary_bias_grads(const float* grad_logit, const float* grad_logit_f, int64_t tokens, int64_t n,
                            float* grad_base, float* grad_scale, Stream stream);

// The boundary's backward in one pass over the streams. The gradient reaching the new streams,
//   G[t, k, :] = grad_new[t, k, :] + pre[t, k] grad_input[t, :] + proj_grad[t, k, :] - rms[t] new_streams[t, k, :]
// (later halves' combine; the next collapse; the next projection: its product term and its RMS
// factor's term), goes through the combine: grad_streams[t, j] = sum_k res[t, j, k] G[t, k],
// grad_branch[t] = sum_k post[t, k] G[t, k] (both in the dtype), and the float32 per-token sums
// grad_post[t, k] = <G[t, k], branch[t]>, grad_res[t, j, k] = <streams[t, j], G[t, k]>.
// grad_new and grad_input may be null (zero). proj_grad and the streams in the dtype.
void hc_boundary_backward(Dtype dtype, const void* grad_new, const void* grad_input, const float* pre,
                          const void* proj_grad, const float* rms, const void* new_streams, const void* streams,
                          const void* branch, const float* post, const float* res, void* grad_streams,
                          void* grad_branch, float* grad_post, float* grad_res, int64_t tokens, int64_t n,
                          int64_t hidden, Stream stream);

}  // namespace strata::kernels::launch
