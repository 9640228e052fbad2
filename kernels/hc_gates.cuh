#pragma once
// The per-token gate math mHC's kernels share (kernels/hc_maps.cu, kernels/hc_boundary.cu),
// rounded as the LibTorch twin's ops round it: a logit is the product f * scale, rounded, plus
// base (no fma), and the sigmoid is 1 / (1 + exp(-x)), as ATen's CUDA sigmoid computes it.
#include <cuda_runtime.h>

namespace strata::kernels::hc_gates {

__device__ __forceinline__ float logit(float x, float scale, float base) {
  return __fadd_rn(__fmul_rn(x, scale), base);
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

}  // namespace strata::kernels::hc_gates
