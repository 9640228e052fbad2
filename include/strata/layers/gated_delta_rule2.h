#pragma once
// The gated delta rule of Gated DeltaNet-2 (Megatron's GatedDeltaNet2), differentiable.
//
// GDN2 replaces Gated DeltaNet's per-head scalar decay and write strength with channel-wise gates
// and decouples erasing from writing. Per head, with state S [Dk, Dv], log decay g_t [Dk] (<= 0,
// one per key channel), erase gate b_t [Dk] and write gate w_t [Dv] (both in (0, 1)):
//   S   = Diag(exp(g_t)) S                      forget, per key channel
//   S   = S - k_t ((b_t * k_t)^T S)             erase what the gated key reads
//   S   = S + k_t (w_t * v_t)^T                 write the gated value
//   o_t = S^T q_t                               read after writing
// i.e. S_t = (I - k_t (b_t * k_t)^T) Diag(exp(g_t)) S_{t-1} + k_t (w_t * v_t)^T.
// gated_delta_rule2_recurrent runs this definition token by token (the reference, and decoding);
// gated_delta_rule2_chunked computes the same thing with matrix products inside chunks (a UT
// transform per chunk, the per-channel decays carried on the operands with every exponent at
// most 0, so strong decays cannot overflow) and a scan over chunks.
// Both compute in float32 (float64 inputs stay float64) and return out in v's dtype.
//
// Packed documents: with cu_seqlens (int64 or int32 [N + 1], as gated_delta_rule.h describes) the
// batch holds one row of N documents back to back; the state restarts at each document's first
// token from initial_state[d] (zeros when absent), and final_state holds one state per document.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "strata/layers/gated_delta_rule.h"

namespace strata {

// q, k [B, T, H, Dk]: the caller L2-normalises them and scales q (Megatron: 1/sqrt(Dk));
// v [B, T, H, Dv]; g, b [B, T, H, Dk]; w [B, T, H, Dv]; initial_state [B, H, Dk, Dv]
// ([N, H, Dk, Dv] for packed documents), zeros when absent. T need not be a multiple of
// chunk_size. Returns out [B, T, H, Dv] and the final state, as DeltaRuleOutput describes.
DeltaRuleOutput gated_delta_rule2_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& g, const at::Tensor& b, const at::Tensor& w,
                                          int64_t chunk_size, const std::optional<at::Tensor>& initial_state,
                                          const std::optional<at::Tensor>& cu_seqlens = std::nullopt);

DeltaRuleOutput gated_delta_rule2_recurrent(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& g, const at::Tensor& b, const at::Tensor& w,
                                            const std::optional<at::Tensor>& initial_state,
                                            const std::optional<at::Tensor>& cu_seqlens = std::nullopt);

}  // namespace strata
