#pragma once
// Fused RMSNorm, forward and backward: y = x_dtype(x * rsqrt(mean(x^2) + eps)) * w over the last
// dimension, with float32 statistics. The output dtype is x's and w's promoted dtype (a float32
// weight on bfloat16 activations gives float32), as in the RMSNorm layer.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// The LibTorch twin: the RMSNorm layer's ATen ops, on any device, differentiable by autograd.
at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps);

// The CUDA kernels behind an autograd function (the forward keeps x and rstd per row for the
// backward); calling it in a CPU-only build is an error.
at::Tensor rms_norm_cuda(const at::Tensor& x, const at::Tensor& weight, double eps);

// The kernels where use_cuda_kernels(x), the twin otherwise.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace strata::kernels
