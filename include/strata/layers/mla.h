#pragma once
// Multi-head latent attention (DeepSeek-V2/V3's MLA, Megatron's MLASelfAttention):
//   q latent  = q_layernorm(linear_q_down_proj(x))                  [B, T, q_lora_rank]
//   q         = linear_q_up_proj(q latent) per head [content | position]
//               (linear_q_proj(x) when q_lora_rank is 0)
//   [kv latent | k_pos_emb] = linear_kv_down_proj(x)                 [kv_lora_rank | qk_pos_emb_head_dim]
//   [k content | v] per head = linear_kv_up_proj(kv_layernorm(kv latent))
//   k         = [k content | RoPE(k_pos_emb)], the position part shared by every head
//   out       = linear_proj(core_attention(q with RoPE on its position part, k, v))
// The softmax scale is 1 / sqrt(qk_head_dim + qk_pos_emb_head_dim), times DeepSeek-V3's
// yarn_mscale(factor, mscale_all_dim)^2 under YaRN (rotary_frequencies.h). RoPE rotates the whole
// position part in the "rotate half" layout (rotary.h); DeepSeek's checkpoints rotate interleaved
// pairs, which the HF tensor map turns into this layout by permuting the projections' rows. MLA owns
// its rotary tables (qk_pos_emb_head_dim wide, rotary_base, rotary_scaling), so it mixes with layers
// of other widths; the DSA indexer rotates with the same tables.
// Parameters (relative to the mixer): linear_q_down_proj.weight, q_layernorm.weight,
// linear_q_up_proj.weight (or linear_q_proj.weight), linear_kv_down_proj.weight,
// kv_layernorm.weight, linear_kv_up_proj.weight, linear_proj.weight, and core_attention's.
#include "strata/layers/mla_slots.h"
#include "strata/layers/rotary.h"
#include "strata/spec/backend.h"

namespace strata {

struct MlaSubmodules {
  Builder<slots::MlaLinearQProj> linear_q_proj;  // used when q_lora_rank is 0
  Builder<slots::MlaLinearQDownProj> linear_q_down_proj;
  Builder<slots::MlaQLayernorm> q_layernorm;
  Builder<slots::MlaLinearQUpProj> linear_q_up_proj;
  Builder<slots::MlaLinearKvDownProj> linear_kv_down_proj;
  Builder<slots::MlaKvLayernorm> kv_layernorm;
  Builder<slots::MlaLinearKvUpProj> linear_kv_up_proj;
  Builder<slots::MlaCoreAttention> core_attention;
  Builder<slots::MlaLinearProj> linear_proj;
};

// Plain causal softmax attention over every earlier key, as MLA's core attention.
class DenseLatentAttention : public LatentCoreAttentionModule {
 public:
  explicit DenseLatentAttention(std::shared_ptr<CoreAttentionModule> attention);
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const LatentAttentionInputs& inputs) override;

 private:
  std::shared_ptr<CoreAttentionModule> attention_;
};

// Adapter: a core_attention builder (backend.core_attention()) for MLA's core_attention slot.
Builder<slots::MlaCoreAttention> dense_latent_attention(Builder<slots::CoreAttention> core_attention);

class MultiLatentAttention : public SequenceMixer {
 public:
  // Errors name the bad MLA field of the config (see validate_latent_attention).
  MultiLatentAttention(const LayerArgs& args, const MlaSubmodules& submodules);

  // The builder for a self_attention slot.
  static Builder<slots::SelfAttention> builder(MlaSubmodules submodules);

  // With ctx.cache, continues the cached positions and appends this call's latents to them.
  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

 private:
  int64_t layer_number_;
  int64_t num_heads_;
  int64_t q_lora_rank_, kv_lora_rank_, qk_head_dim_, qk_pos_emb_head_dim_, v_head_dim_;
  RotaryEmbedding rotary_;
  std::shared_ptr<LinearModule> linear_q_proj_;  // null with a query latent
  std::shared_ptr<LinearModule> linear_q_down_proj_;  // null without one
  std::shared_ptr<NormModule> q_layernorm_;
  std::shared_ptr<LinearModule> linear_q_up_proj_;
  std::shared_ptr<LinearModule> linear_kv_down_proj_;
  std::shared_ptr<NormModule> kv_layernorm_;
  std::shared_ptr<LinearModule> linear_kv_up_proj_;
  std::shared_ptr<LatentCoreAttentionModule> core_attention_;
  std::shared_ptr<LinearModule> linear_proj_;
};

// MLA with dense attention ('+'), from a backend; norms as the config asks (configured_norm).
template <class B>
MlaSubmodules mla_submodules(const B& backend) {
  static_assert(check_backend<B>());
  return {
      .linear_q_proj = backend.column_parallel_linear(),
      .linear_q_down_proj = backend.column_parallel_linear(),
      .q_layernorm = configured_norm(backend),
      .linear_q_up_proj = backend.column_parallel_linear(),
      .linear_kv_down_proj = backend.column_parallel_linear(),
      .kv_layernorm = configured_norm(backend),
      .linear_kv_up_proj = backend.column_parallel_linear(),
      .core_attention = dense_latent_attention(backend.core_attention()),
      .linear_proj = backend.row_parallel_linear(),
  };
}

}  // namespace strata
