#pragma once
// Fused rotary position embedding (rotate-half layout, partial rotary) forward and backward:
// x [B, T, heads, D] rotated by float32 tables cos, sin [T, R] (R <= D, even); dims R.. pass
// through. The result has x's dtype; the tables are rounded to it first, as HF does.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// The LibTorch twin (x_rot * cos + rotate_half(x_rot) * sin), on any device and any leading
// shape that broadcasts against [T, 1, R]; differentiable by autograd.
at::Tensor apply_rotary_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The CUDA kernel behind an autograd function (the backward is the inverse rotation, so nothing
// but the tables is kept). x must be 4-D with tables [x.size(1), R].
at::Tensor apply_rotary_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The kernel where use_cuda_kernels(x) and the shapes are the kernel's ([B, T, heads, D] with
// [T, R] tables), the twin otherwise.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace strata::kernels
