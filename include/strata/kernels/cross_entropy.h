#pragma once
// Fused next-token cross-entropy: logits [B, T, V] at position t predict labels[t + 1] (HF's
// shift), labels equal to -100 are ignored, and the result is the float32 mean over the
// predicted positions. The kernels read the logits in their own dtype (bf16 in a bf16 step) and
// never make a float32 copy: the forward keeps one logsumexp per position, the backward writes
// the logits' gradient directly in their dtype.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

inline constexpr int64_t kIgnoreIndex = -100;

// The LibTorch twin: shift, cast to float32, at::cross_entropy_loss; differentiable by autograd.
at::Tensor causal_lm_cross_entropy_reference(const at::Tensor& logits, const at::Tensor& labels);

// The CUDA kernels behind an autograd function. A label outside [0, V) (other than -100) makes
// the loss NaN rather than raising, so the step needs no host synchronisation.
at::Tensor causal_lm_cross_entropy_cuda(const at::Tensor& logits, const at::Tensor& labels);

// The kernels where use_cuda_kernels(logits) and labels [B, T] are on the logits' device, the
// twin otherwise.
at::Tensor causal_lm_cross_entropy(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace strata::kernels
