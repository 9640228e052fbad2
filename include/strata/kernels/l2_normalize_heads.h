#pragma once
// Gated DeltaNet's q and k as the chunked delta rule reads them, from the conv's output:
//   y[b, t, h, :] = x_dtype(scale * x[b, t, j, :] * rsqrt(sum(x[b, t, j, :]^2) + eps)), j = h / repeats,
// with float32 math (float64 for float64 x) and one rounding (as flash-linear-attention's
// in-kernel l2norm), each key head repeated for the `repeats` value heads that read it. y is
// [B, T, Hk * repeats, D] with heads-first memory ([B, H, T, D] contiguous, transposed), so the
// rule copies nothing.
#include <ATen/ATen.h>

namespace strata::kernels {

// The LibTorch twin, on any device and dtype, differentiable by autograd.
at::Tensor l2_normalize_heads_reference(const at::Tensor& x, int64_t repeats, double scale, double eps);

// The CUDA kernels behind an autograd function that keeps only x. x [B, T, Hk, D] in float32,
// bfloat16 or float16 with a contiguous last dimension (strided views of the conv's output are
// read in place), D <= launch::kMaxL2NormalizeHeadDim. Calling it in a CPU-only build is an error.
at::Tensor l2_normalize_heads_cuda(const at::Tensor& x, int64_t repeats, double scale, double eps);

// Whether l2_normalize_heads runs the kernels for x: use_cuda_kernels(x) and x fits them.
bool l2_normalize_heads_kernels_take(const at::Tensor& x);

// The kernels where they take x, the twin otherwise.
at::Tensor l2_normalize_heads(const at::Tensor& x, int64_t repeats, double scale, double eps);

}  // namespace strata::kernels
