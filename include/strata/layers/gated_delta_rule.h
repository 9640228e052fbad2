#pragma once
// The gated delta rule of Gated DeltaNet (Qwen3-Next's linear attention), differentiable.
//
// Per head, with state S [Dk, Dv], log decay g_t <= 0 and write strength beta_t in (0, 1):
//   S      = exp(g_t) S                      forget
//   delta  = beta_t (v_t - S^T k_t)          what the memory gets wrong about v_t
//   S      = S + k_t delta^T                 correct it
//   o_t    = S^T q_t                         read after writing
// gated_delta_rule_recurrent runs this definition token by token (the decode step and the
// reference); gated_delta_rule_chunked computes the same thing with matrix products inside
// chunks (the WY / UT transform), batched over all chunks, and the state hand-off between chunks
// (delta_rule_chunk_states.h: a scan over chunks, a CUDA kernel on GPUs).
// Both compute in float32 (float64 inputs stay float64) and return out in v's dtype.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

namespace strata {

struct DeltaRuleOutput {
  at::Tensor out;          // [B, T, H, Dv], in v's dtype
  at::Tensor final_state;  // [B, H, Dk, Dv] float32 (float64 for float64 inputs): S after the last token
};

// q, k [B, T, H, Dk]: L2-normalised per head, q already scaled by 1/sqrt(Dk); v [B, T, H, Dv];
// g [B, T, H] log decay; beta [B, T, H]; initial_state [B, H, Dk, Dv], zeros when absent.
// T need not be a multiple of chunk_size.
DeltaRuleOutput gated_delta_rule_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         const at::Tensor& g, const at::Tensor& beta, int64_t chunk_size,
                                         const std::optional<at::Tensor>& initial_state);

DeltaRuleOutput gated_delta_rule_recurrent(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& g, const at::Tensor& beta,
                                           const std::optional<at::Tensor>& initial_state);

}  // namespace strata
