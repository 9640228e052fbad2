#pragma once
// Stream k of mHC's combine at one hidden position, for every kernel that combines
// (kernels/hyper_connection.cu, kernels/hc_boundary.cu, kernels/hc_boundary_forward.cu), so that
// all of them give the same bits (the tests compare the fused boundary with hc_combine bit for
// bit): post_k branch, then res_jk stream_j over the streams in order, each step one rounding
// (spelled out: left to contraction, nvcc fused n = 1 differently in one kernel than in another).
#include <cuda_runtime.h>

namespace strata::kernels::hc_combine {

// post [N] and res [N, N] (row j: stream j's weights in the new streams) of the token; stream(j):
// stream j's value at this position.
template <int N, class Stream>
__device__ __forceinline__ float combined(const float* post, const float* res, float branch, const Stream& stream,
                                          int k) {
  float sum = __fmul_rn(post[k], branch);
#pragma unroll
  for (int j = 0; j < N; ++j) sum = __fmaf_rn(res[j * N + k], stream(j), sum);
  return sum;
}

}  // namespace strata::kernels::hc_combine
