#pragma once
// One decoding step of the gated delta rule (Gated DeltaNet's recurrence for one new token), for
// each (sequence, head) with its state S [Dk, Dv]:
//   S = exp(g) S;   u = beta (v - S^T k);   S = S + k u^T;   out = S^T q
// q, k [B, H, Dk] (q L2-normalised and scaled, k L2-normalised, as the delta rule takes them),
// v [B, H, Dv], g (log decay) and beta [B, H], state [B, H, Dk, Dv]. Computed in float32 (float64
// when an input or the state is float64); out in v's dtype.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

struct DeltaRuleStep {
  at::Tensor out;    // [B, H, Dv], in v's dtype
  at::Tensor state;  // [B, H, Dk, Dv], in the compute dtype: S after the token
};

// The LibTorch twin: the formula above in ATen ops, on any device, differentiable by autograd.
// Leaves `state` as it is.
DeltaRuleStep gated_delta_rule_step_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const at::Tensor& g, const at::Tensor& beta, const at::Tensor& state);

// Whether gated_delta_rule_step_cuda takes these: CUDA tensors on one device with
// use_cuda_kernels(v), q, k, g and beta in float32, bfloat16 or float16, a contiguous float32
// state, Dk <= launch::kMaxDeltaStepKeyDim, and no gradient to record (the kernel has no backward).
bool gated_delta_rule_step_kernel_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& g, const at::Tensor& beta, const at::Tensor& state);

// The fused CUDA kernel (kernels/gated_delta_rule_step.cu): advances `state` in place and returns
// out. Strided views of q, k, v, g and beta are read in place (the last dimension contiguous);
// inputs the kernel does not read as they are (q, k, g in a 16-bit dtype, beta in a dtype other
// than v's) are widened to float32 first, which changes no value.
at::Tensor gated_delta_rule_step_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& g, const at::Tensor& beta, const at::Tensor& state);

// The step that advances `state`: the kernel where gated_delta_rule_step_kernel_applies, the twin
// otherwise. The new state is written into `state` in place (so that a CUDA graph captured over
// the step stays valid), unless autograd records the twin's step or its compute dtype is wider
// than the state's: then `state` is rebound to the twin's new state. Returns out.
at::Tensor gated_delta_rule_step_(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                  const at::Tensor& beta, at::Tensor& state);

}  // namespace strata::kernels
