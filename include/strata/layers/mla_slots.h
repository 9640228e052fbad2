#pragma once
// The slots of multi-head latent attention (Megatron's MLASelfAttentionSubmodules), and the
// protocol of its core attention. MLA's core attention gets more than q, k and v: DeepSeek sparse
// attention's indexer scores keys from the layer input and the query latent, so the core
// attention slot has its own interface, LatentCoreAttentionModule. A plain core attention fills
// it through dense_latent_attention() (mla.h).
#include "strata/spec/args.h"
#include "strata/spec/builder.h"
#include "strata/spec/interfaces.h"

namespace strata {

// What an MLA layer keeps between decoding steps: the normalised key/value latents and the
// rotated shared position keys of every position so far (the compressed cache MLA exists for),
// and what its core attention keeps beside them (DSA's indexer keys).
struct LatentAttentionState : MixerState {
  at::Tensor kv_latent;     // [B, S, kv_lora_rank]
  at::Tensor k_pos_emb;     // [B, S, qk_pos_emb_head_dim]
  at::Tensor indexer_keys;  // [B, S, dsa_indexer_head_dim], for a D layer
};

// What MLA hands its core attention besides q, k and v.
struct LatentAttentionInputs {
  at::Tensor hidden;      // [B, T, hidden]: the mixer's input
  at::Tensor q_latent;    // [B, T, q_lora_rank]: the normalised query latent; undefined when q_lora_rank is 0
  at::Tensor rotary_cos;  // [T, qk_pos_emb_head_dim] for the T current positions
  at::Tensor rotary_sin;
  LatentAttentionState* state = nullptr;  // while decoding: this layer's cache, which core attention may extend
};

// Causal softmax attention for MLA. q [B, T, heads, Dqk], k [B, S, heads, Dqk], v [B, S, heads, Dv]
// with S >= T: query i is position S - T + i and sees keys 0 .. S - T + i. Returns [B, T, heads * Dv].
class LatentCoreAttentionModule : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const LatentAttentionInputs& inputs) = 0;
};

}  // namespace strata

namespace strata::slots {

STRATA_SLOT(MlaLinearQProj, "linear_q_proj", LinearModule, ColumnLinearArgs);
STRATA_SLOT(MlaLinearQDownProj, "linear_q_down_proj", LinearModule, ColumnLinearArgs);
STRATA_SLOT(MlaLinearQUpProj, "linear_q_up_proj", LinearModule, ColumnLinearArgs);
STRATA_SLOT(MlaLinearKvDownProj, "linear_kv_down_proj", LinearModule, ColumnLinearArgs);
STRATA_SLOT(MlaLinearKvUpProj, "linear_kv_up_proj", LinearModule, ColumnLinearArgs);
STRATA_SLOT(MlaQLayernorm, "q_layernorm", NormModule, NormArgs);
STRATA_SLOT(MlaKvLayernorm, "kv_layernorm", NormModule, NormArgs);
STRATA_SLOT(MlaCoreAttention, "core_attention", LatentCoreAttentionModule, CoreAttentionArgs);
STRATA_SLOT(MlaLinearProj, "linear_proj", LinearModule, RowLinearArgs);

}  // namespace strata::slots
