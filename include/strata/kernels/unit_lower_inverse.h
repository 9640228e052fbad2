#pragma once
// T = (I + L)^-1 for a batch of small unit lower-triangular matrices, L the strictly lower
// triangle of A [..., C, C] (A's diagonal and upper triangle are never read): the chunked delta
// rule's UT transform. T is unit lower triangular (exact zeros above the diagonal, ones on it)
// and differentiable in A; only A's strictly lower triangle receives a gradient.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// The LibTorch twin (a unitriangular linalg_solve_triangular against the identity), any device
// and floating dtype, differentiable by autograd.
at::Tensor unit_lower_inverse_reference(const at::Tensor& a);

// The CUDA kernel (float32, C <= launch::kMaxUnitLowerInverseSize) behind an autograd function
// whose backward is two matmuls: dT = -T dM T, so grad_A = strictly_lower(-T^T grad_T T^T).
at::Tensor unit_lower_inverse_cuda(const at::Tensor& a);

// The kernel where use_cuda_kernels(a), a is float32 and C <= launch::kMaxUnitLowerInverseSize;
// the twin otherwise.
at::Tensor unit_lower_inverse(const at::Tensor& a);

}  // namespace strata::kernels
