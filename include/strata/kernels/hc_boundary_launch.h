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

// dots[t, j] = sum_h grad[t, h] streams[t, j, h] (float32, fixed summation order): the gradient
// of the collapse's weights, without the streams-sized gradient hc_collapse_backward writes.
void hc_stream_dots(Dtype dtype, const void* grad, const void* streams, float* dots, int64_t tokens, int64_t n,
                    int64_t hidden, Stream stream);

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
