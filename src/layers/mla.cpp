#include "strata/layers/mla.h"

#include <cmath>

#include "strata/layers/rotary_frequencies.h"

namespace strata {

DenseLatentAttention::DenseLatentAttention(std::shared_ptr<CoreAttentionModule> attention)
    : attention_(register_module("attention", std::move(attention))) {}

at::Tensor DenseLatentAttention::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         const LatentAttentionInputs&) {
  return attention_->forward(q, k, v);
}

Builder<slots::MlaCoreAttention> dense_latent_attention(Builder<slots::CoreAttention> core_attention) {
  return [core_attention = std::move(core_attention)](const CoreAttentionArgs& args) {
    return std::make_shared<DenseLatentAttention>(core_attention(args));
  };
}

namespace {
// Checked before any member is built from it (the rotary embedding would fail on an odd width first).
const TransformerConfig& validated(const TransformerConfig& c) {
  validate_latent_attention(c, /*sparse=*/false);
  return c;
}
}  // namespace

MultiLatentAttention::MultiLatentAttention(const LayerArgs& args, const MlaSubmodules& sub)
    : layer_number_(args.layer_number),
      num_heads_(validated(*args.config).num_attention_heads),
      q_lora_rank_(args.config->q_lora_rank),
      kv_lora_rank_(args.config->kv_lora_rank),
      qk_head_dim_(args.config->qk_head_dim),
      qk_pos_emb_head_dim_(args.config->qk_pos_emb_head_dim),
      v_head_dim_(args.config->v_head_dim),
      rotary_(args.config->qk_pos_emb_head_dim, args.config->rotary_base, args.config->rotary_scaling) {
  const auto& c = *args.config;
  const auto q_head_dim = qk_head_dim_ + qk_pos_emb_head_dim_;
  // As in Megatron, the down and up projections have no bias; linear_proj follows add_bias_linear.
  auto column = [&](const auto& builder, const char* name, int64_t input_size, int64_t output_size) {
    return register_module(name, builder(ColumnLinearArgs{
        .config = args.config, .input_size = input_size, .output_size = output_size, .bias = false,
        .init_std = c.init_method_std, .name = name, .pg = args.pg}));
  };
  if (q_lora_rank_ > 0) {
    linear_q_down_proj_ = column(sub.linear_q_down_proj, "linear_q_down_proj", c.hidden_size, q_lora_rank_);
    q_layernorm_ = register_module("q_layernorm", sub.q_layernorm(NormArgs{args.config, q_lora_rank_, c.layernorm_epsilon}));
    linear_q_up_proj_ = column(sub.linear_q_up_proj, "linear_q_up_proj", q_lora_rank_, num_heads_ * q_head_dim);
  } else {
    linear_q_proj_ = column(sub.linear_q_proj, "linear_q_proj", c.hidden_size, num_heads_ * q_head_dim);
  }
  linear_kv_down_proj_ =
      column(sub.linear_kv_down_proj, "linear_kv_down_proj", c.hidden_size, kv_lora_rank_ + qk_pos_emb_head_dim_);
  kv_layernorm_ = register_module("kv_layernorm", sub.kv_layernorm(NormArgs{args.config, kv_lora_rank_, c.layernorm_epsilon}));
  linear_kv_up_proj_ =
      column(sub.linear_kv_up_proj, "linear_kv_up_proj", kv_lora_rank_, num_heads_ * (qk_head_dim_ + v_head_dim_));
  const double softmax_scale =
      latent_attention_softmax_scale_factor(c.rotary_scaling) / std::sqrt(static_cast<double>(q_head_dim));
  core_attention_ = register_module("core_attention", sub.core_attention(CoreAttentionArgs{
      .config = args.config, .layer_number = args.layer_number, .attn_mask_type = AttnMaskType::causal,
      .num_heads = num_heads_, .num_kv_heads = num_heads_, .head_dim = q_head_dim, .softmax_scale = softmax_scale,
      .pg = args.pg}));
  // As for softmax attention: residual branches add up, so the output init is scaled by 1/sqrt(2 * num_layers).
  linear_proj_ = register_module("linear_proj", sub.linear_proj(RowLinearArgs{
      .config = args.config, .input_size = num_heads_ * v_head_dim_, .output_size = c.hidden_size,
      .bias = c.add_bias_linear, .skip_bias_add = true,
      .init_std = c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)), .name = "linear_proj",
      .pg = args.pg}));
}

Builder<slots::SelfAttention> MultiLatentAttention::builder(MlaSubmodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) {
    return std::make_shared<MultiLatentAttention>(args, submodules);
  };
}

MixerOutput MultiLatentAttention::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  refuse_packed_documents(ctx, "MultiLatentAttention");
  const auto batch = hidden.size(0), seq = hidden.size(1);
  LatentAttentionInputs inputs{.hidden = hidden};
  at::Tensor q;
  if (linear_q_down_proj_) {
    inputs.q_latent = q_layernorm_->forward(linear_q_down_proj_->forward(hidden).output);
    q = linear_q_up_proj_->forward(inputs.q_latent).output;
  } else {
    q = linear_q_proj_->forward(hidden).output;
  }
  auto q_parts = q.view({batch, seq, num_heads_, qk_head_dim_ + qk_pos_emb_head_dim_})
                     .split_with_sizes({qk_head_dim_, qk_pos_emb_head_dim_}, -1);
  auto kv_down = linear_kv_down_proj_->forward(hidden).output.split_with_sizes({kv_lora_rank_, qk_pos_emb_head_dim_}, -1);
  auto kv_latent = kv_layernorm_->forward(kv_down[0]);

  const int64_t offset = ctx.cache ? ctx.cache->sequence_length() : 0;
  std::tie(inputs.rotary_cos, inputs.rotary_sin) = rotary_.tables(seq, offset, hidden.device());
  auto q_pos_emb = apply_rotary(q_parts[1], inputs.rotary_cos, inputs.rotary_sin);
  auto k_pos_emb = apply_rotary(kv_down[1].unsqueeze(2), inputs.rotary_cos, inputs.rotary_sin).squeeze(2);
  if (ctx.cache) {
    auto& state = ctx.cache->state<LatentAttentionState>(layer_number_);
    kv_latent = append_to_cache(state.kv_latent, kv_latent);
    k_pos_emb = append_to_cache(state.k_pos_emb, k_pos_emb);
    inputs.state = &state;
  }

  // Keys and values of every position so far, per head, from the latents.
  const auto keys = kv_latent.size(1);
  auto kv_parts = linear_kv_up_proj_->forward(kv_latent)
                      .output.view({batch, keys, num_heads_, qk_head_dim_ + v_head_dim_})
                      .split_with_sizes({qk_head_dim_, v_head_dim_}, -1);
  auto shared_pos = k_pos_emb.unsqueeze(2).expand({batch, keys, num_heads_, qk_pos_emb_head_dim_});
  auto k = at::cat({kv_parts[0], shared_pos}, -1);
  auto query = at::cat({q_parts[0], q_pos_emb}, -1);
  return linear_proj_->forward(core_attention_->forward(query, k, kv_parts[1], inputs));
}

}  // namespace strata
