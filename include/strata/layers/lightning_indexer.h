#pragma once
// DeepSeek-V3.2's lightning indexer (Megatron's DSAIndexer, HF's DeepseekV32Indexer): a few cheap
// heads score every visible key for each query, and the top dsa_indexer_topk keys are the ones
// sparse attention reads.
//   q_h   = RoPE(linear_wq_b(q latent)) per indexer head            [B, T, heads, D]
//   k     = RoPE(k_norm(linear_wk(x)))  one key shared by the heads  [B, S, D]
//   w_h   = linear_weights_proj(x) / sqrt(heads)                     [B, T, heads]
//   score(t, s) = sum_h w_h(t) * ReLU(q_h(t) . k(s) / sqrt(D)),  -inf where s is in t's future
// RoPE rotates the first qk_pos_emb_head_dim dimensions in the "rotate half" layout (HF's
// indexer, unlike its MLA, does not interleave). k_norm is a LayerNorm with epsilon 1e-6, as in
// DeepSeek's indexer. Scores are computed in float32.
//
// The language-model loss does not train the indexer: top-k selection has no gradient, and HF
// runs the indexer without autograd. DeepSeek trains it with its own loss (a KL divergence to the
// attention distribution), which strata does not have yet; its parameters get no gradient.
// Parameters (relative to the indexer): linear_wq_b.weight [heads * D, q_lora_rank],
// linear_wk.weight [D, hidden], k_norm.weight and k_norm.bias [D], linear_weights_proj.weight [heads, hidden].
#include "strata/layers/dsa_slots.h"
#include "strata/spec/backend.h"

namespace strata {

// [T, S] bool, true where query t (position S - T + t) may see key s: s <= S - T + t.
at::Tensor visible_keys(int64_t queries, int64_t keys, at::Device device);

struct LightningIndexerSubmodules {
  Builder<slots::DsaLinearWqB> linear_wq_b;
  Builder<slots::DsaLinearWk> linear_wk;
  Builder<slots::DsaKNorm> k_norm;
  Builder<slots::DsaLinearWeightsProj> linear_weights_proj;
};

class LightningIndexer : public SparseIndexerModule {
 public:
  // Errors name the bad dsa_indexer_* field (see validate_latent_attention).
  LightningIndexer(const CoreAttentionArgs& args, const LightningIndexerSubmodules& submodules);

  // The builder for DSA's indexer slot.
  static Builder<slots::DsaIndexer> builder(LightningIndexerSubmodules submodules);

  // With inputs.state, appends this call's keys to the cached ones and scores all of them.
  at::Tensor forward(const LatentAttentionInputs& inputs) override;

  // The index scores [B, T, S] (float32, -inf for future keys) that forward takes the top-k of.
  at::Tensor scores(const LatentAttentionInputs& inputs);

 private:
  int64_t num_heads_, head_dim_, topk_;
  std::shared_ptr<LinearModule> linear_wq_b_;
  std::shared_ptr<LinearModule> linear_wk_;
  std::shared_ptr<NormModule> k_norm_;
  std::shared_ptr<LinearModule> linear_weights_proj_;
};

template <class B>
LightningIndexerSubmodules lightning_indexer_submodules(const B& backend) {
  static_assert(check_backend<B>());
  return {.linear_wq_b = backend.column_parallel_linear(),
          .linear_wk = backend.column_parallel_linear(),
          .k_norm = backend.layer_norm(),
          .linear_weights_proj = backend.column_parallel_linear()};
}

}  // namespace strata
