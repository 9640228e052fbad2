#pragma once
// Fused gated RMSNorm (Qwen3-Next's RMSNormGated, Gated DeltaNet's output norm), forward and
// backward, over the last dimension of x and gate [..., D]:
//   out = x_dtype(w * x_dtype(x * rsqrt(mean(x^2) + eps)) * silu(gate)),
// with float32 statistics and a float32 gate, in x's dtype.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// The LibTorch twin: HF's order of casts in ATen ops, on any device and dtype, differentiable by
// autograd (broadcasts gate and weight as ATen does).
at::Tensor gated_rms_norm_reference(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps);

// The CUDA kernels behind an autograd function (the forward keeps x, gate and rstd per row for
// the backward). x and gate of one shape [..., D] with D <= launch::kMaxGatedRmsNormDim, strided
// views welcome where the last dimension is contiguous ([B, T, H, D] views are read in place);
// weight float32 [D]; the output is contiguous. Calling it in a CPU-only build is an error.
at::Tensor gated_rms_norm_cuda(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps);

// The kernels where use_cuda_kernels(x) and the inputs fit them, the twin otherwise.
at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps);

}  // namespace strata::kernels
