#pragma once
// Multi-head self attention with grouped-query heads, optional q/k RMSNorm per head and
// rotary embedding (full or partial). linear_qkv packs heads by query group as Megatron does:
// for each group g, [q heads of g, k_g, v_g], so tensor-parallel shards hold whole groups.
// With config.attention_output_gate (Qwen3-Next) each group also holds one gate per query head,
// after its queries, and the attention output is multiplied by sigmoid(gate) before linear_proj.
#include "strata/spec/slots.h"

namespace strata {

struct SelfAttentionSubmodules {
  Builder<slots::LinearQkv> linear_qkv;
  Builder<slots::CoreAttention> core_attention;
  Builder<slots::LinearProj> linear_proj;
  std::optional<Builder<slots::QLayernorm>> q_layernorm;
  std::optional<Builder<slots::KLayernorm>> k_layernorm;
};

// Keys and values of the positions decoded so far, [B, S, groups, head_dim] each (S = the
// cache's capacity for a fixed-capacity cache).
struct KvCache : MixerState {
  at::Tensor k, v;
};

class SelfAttention : public SequenceMixer {
 public:
  SelfAttention(const LayerArgs& args, const SelfAttentionSubmodules& submodules,
                AttnMaskType mask = AttnMaskType::causal);

  // The builder for a self_attention slot.
  static Builder<slots::SelfAttention> builder(SelfAttentionSubmodules submodules,
                                               AttnMaskType mask = AttnMaskType::causal);

  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

 private:
  // Writes k, v at the cache's positions into buffers of its capacity and attends over them with
  // a mask that hides the positions not reached yet.
  at::Tensor attend_fixed_capacity(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, InferenceCache& cache);

  int64_t layer_number_;
  int64_t num_heads_;
  int64_t num_groups_;
  int64_t head_dim_;
  bool output_gate_;
  std::shared_ptr<LinearModule> linear_qkv_;
  std::shared_ptr<NormModule> q_layernorm_;  // null when absent
  std::shared_ptr<NormModule> k_layernorm_;
  std::shared_ptr<CoreAttentionModule> core_attention_;
  std::shared_ptr<LinearModule> linear_proj_;
};

}  // namespace strata
