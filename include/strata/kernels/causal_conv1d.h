#pragma once
// Gated DeltaNet's causal depthwise conv1d over time followed by SiLU, forward and backward, on
// x [B, T, C] (channels contiguous, rows may be wider than C: a slice of in_proj's output) with
// nn.Conv1d's depthwise weight [C, 1, K]:
//   out[b, t, c] = silu(sum_j weight[c, 0, j] x[b, t - (K - 1) + j, c]),  x zero before t = 0,
// in x's dtype. The weight is first cast to x's dtype (as CUDA autocast casts it for at::conv1d;
// the cast is differentiable, so a float32 parameter still gets its gradient).
// With cu_seqlens (packed documents, packed_documents.h; B = 1) x is also zero before each
// document's first token: no output sees another document's inputs.
#include <ATen/ATen.h>

#include <optional>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// The LibTorch twin (transpose, at::conv1d with K - 1 padding, the first T outputs, silu,
// transpose back to [B, T, C]; with cu_seqlens, that for each document, concatenated), on any
// device, differentiable by autograd.
at::Tensor causal_conv1d_silu_reference(const at::Tensor& x, const at::Tensor& weight,
                                        const std::optional<at::Tensor>& cu_seqlens = std::nullopt);

// The CUDA kernels (K <= launch::kMaxConvWidth) behind an autograd function that keeps x and
// the cast weight for the backward; the output is contiguous [B, T, C].
at::Tensor causal_conv1d_silu_cuda(const at::Tensor& x, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& cu_seqlens = std::nullopt);

// The kernels where use_cuda_kernels(x), the weight is on x's device and K <= kMaxConvWidth; the
// twin otherwise.
at::Tensor causal_conv1d_silu(const at::Tensor& x, const at::Tensor& weight,
                              const std::optional<at::Tensor>& cu_seqlens = std::nullopt);

}  // namespace strata::kernels
