#pragma once
// The gated delta rule of Gated DeltaNet (Qwen3-Next's linear attention), differentiable.
//
// Per head, with state S [Dk, Dv], log decay g_t <= 0 and write strength beta_t in (0, 1):
//   S      = exp(g_t) S                      forget
//   delta  = beta_t (v_t - S^T k_t)          what the memory gets wrong about v_t
//   S      = S + k_t delta^T                 correct it
//   o_t    = S^T q_t                         read after writing
// gated_delta_rule_recurrent runs this definition token by token (the reference; one-token
// decode steps take the fused step of kernels/gated_delta_rule_step.h); gated_delta_rule_chunked computes the same thing with matrix products inside
// chunks (the WY / UT transform), batched over all chunks, and the state hand-off between chunks
// (delta_rule_chunk_states.h: a scan over chunks, a CUDA kernel on GPUs).
// Both compute in float32 (float64 inputs stay float64) and return out in v's dtype. On CUDA, with
// bf16/fp16 v and no gradient to record (inference, prefill), the chunked form runs fused
// tensor-core kernels instead (kernels/gated_delta_chunk_forward.h: bf16 products, float32 state).
//
// Packed documents (variable-length training): with cu_seqlens (int64 or int32 [N + 1], Megatron's
// and flash-linear-attention's convention: 0 = cu_seqlens[0] < cu_seqlens[1] < ... < cu_seqlens[N]
// = T, on any device) the batch holds one row (B = 1) of N documents back to back; document d is
// tokens cu_seqlens[d] .. cu_seqlens[d + 1] - 1, and the state restarts at its first token from
// initial_state[d] (zeros when absent). The chunked form then pads each document to whole chunks
// inside its chunk layout, so no chunk holds two documents; the recurrent form runs each document
// on its own. Reading cu_seqlens on the host synchronises with the device when it lives there.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

namespace strata {

struct DeltaRuleOutput {
  at::Tensor out;          // [B, T, H, Dv], in v's dtype
  // [B, H, Dk, Dv] ([N, H, Dk, Dv] for packed documents) float32 (float64 for float64 inputs): S
  // after the last token (of each document)
  at::Tensor final_state;
};

// q, k [B, T, Hk, Dk]: L2-normalised per head, q already scaled by 1/sqrt(Dk); v [B, T, H, Dv]
// with H a multiple of Hk (grouped value heads: key head h serves value heads h r .. h r + r - 1,
// r = H / Hk, as Megatron's and HF's repeat_interleave of the key heads lays them out, without the
// copy on the fused kernels); g [B, T, H] log decay; beta [B, T, H]; initial_state [B, H, Dk, Dv]
// ([N, H, Dk, Dv] for packed documents), zeros when absent. T need not be a multiple of chunk_size.
DeltaRuleOutput gated_delta_rule_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         const at::Tensor& g, const at::Tensor& beta, int64_t chunk_size,
                                         const std::optional<at::Tensor>& initial_state,
                                         const std::optional<at::Tensor>& cu_seqlens = std::nullopt);

DeltaRuleOutput gated_delta_rule_recurrent(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& g, const at::Tensor& beta,
                                           const std::optional<at::Tensor>& initial_state,
                                           const std::optional<at::Tensor>& cu_seqlens = std::nullopt);

}  // namespace strata
