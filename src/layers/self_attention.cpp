#include "strata/layers/self_attention.h"

#include "strata/core/error.h"
#include "strata/layers/rotary.h"

namespace strata {

SelfAttention::SelfAttention(const LayerArgs& args, const SelfAttentionSubmodules& sub, AttnMaskType mask)
    : layer_number_(args.layer_number) {
  const auto& c = *args.config;
  num_heads_ = c.num_attention_heads;
  num_groups_ = c.num_query_groups;
  head_dim_ = c.kv_channels;
  output_gate_ = c.attention_output_gate;
  // Per query group: its query heads, [their output gates,] one key head, one value head.
  const auto query_rows = (output_gate_ ? 2 : 1) * num_heads_;
  const auto qkv_size = (query_rows + 2 * num_groups_) * head_dim_;

  linear_qkv_ = register_module("linear_qkv", sub.linear_qkv(ColumnLinearArgs{
      .config = args.config, .input_size = c.hidden_size, .output_size = qkv_size,
      .bias = c.add_bias_linear || c.add_qkv_bias, .init_std = c.init_method_std, .name = "linear_qkv", .pg = args.pg}));
  // Tensor parallelism gives each rank whole query groups (linear_qkv packs by group).
  const int64_t tp = args.pg.tp_size();
  if (num_groups_ % tp != 0)
    fail("self attention (layer ", args.layer_number, "): num_query_groups = ", num_groups_,
         " does not split over ", tp, " tensor-parallel ranks");
  num_heads_ /= tp;
  num_groups_ /= tp;
  if (sub.q_layernorm)
    q_layernorm_ = register_module("q_layernorm", (*sub.q_layernorm)(NormArgs{args.config, head_dim_, c.layernorm_epsilon}));
  if (sub.k_layernorm)
    k_layernorm_ = register_module("k_layernorm", (*sub.k_layernorm)(NormArgs{args.config, head_dim_, c.layernorm_epsilon}));
  core_attention_ = register_module("core_attention", sub.core_attention(CoreAttentionArgs{
      .config = args.config, .layer_number = args.layer_number, .attn_mask_type = mask,
      .num_heads = num_heads_, .num_kv_heads = num_groups_, .head_dim = head_dim_, .pg = args.pg}));
  // Megatron scales the output projection's init by 1/sqrt(2 * num_layers) (residual branches add up).
  linear_proj_ = register_module("linear_proj", sub.linear_proj(RowLinearArgs{
      .config = args.config, .input_size = c.num_attention_heads * head_dim_, .output_size = c.hidden_size,
      .bias = c.add_bias_linear, .skip_bias_add = true,
      .init_std = c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)), .name = "linear_proj",
      .pg = args.pg}));
}

Builder<slots::SelfAttention> SelfAttention::builder(SelfAttentionSubmodules submodules, AttnMaskType mask) {
  return [submodules = std::move(submodules), mask](const LayerArgs& args) {
    return std::make_shared<SelfAttention>(args, submodules, mask);
  };
}

MixerOutput SelfAttention::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  refuse_packed_documents(ctx, "SelfAttention");
  auto projected = linear_qkv_->forward(hidden).output;
  // Under sequence parallelism the projection gathered the whole sequence: take T from it.
  const auto batch = projected.size(0), seq = projected.size(1);
  const auto q_per_group = num_heads_ / num_groups_;
  const auto gate_per_group = output_gate_ ? q_per_group : 0;
  auto qkv = projected.view({batch, seq, num_groups_, (q_per_group + gate_per_group + 2) * head_dim_});
  auto parts = qkv.split_with_sizes(
      {q_per_group * head_dim_, gate_per_group * head_dim_, head_dim_, head_dim_}, -1);
  auto q = parts[0].reshape({batch, seq, num_heads_, head_dim_});
  auto k = parts[2];
  auto v = parts[3];
  if (q_layernorm_) q = q_layernorm_->forward(q);
  if (k_layernorm_) k = k_layernorm_->forward(k);
  if (ctx.rotary_cos.defined()) {
    q = apply_rotary(q, ctx.rotary_cos, ctx.rotary_sin);
    k = apply_rotary(k, ctx.rotary_cos, ctx.rotary_sin);
  }
  at::Tensor context;
  if (ctx.cache && ctx.cache->fixed_capacity()) {
    context = attend_fixed_capacity(q, k, v, *ctx.cache);
  } else {
    if (ctx.cache) {
      // Decoding: attend over the cached keys/values of earlier positions as well.
      auto& cached = ctx.cache->state<KvCache>(layer_number_);
      k = append_to_cache(cached.k, k);
      v = append_to_cache(cached.v, v);
    }
    context = core_attention_->forward(q, k, v);
  }
  if (output_gate_) context = context * at::sigmoid(parts[1].reshape({batch, seq, num_heads_ * head_dim_}));
  return linear_proj_->forward(context);
}

at::Tensor SelfAttention::attend_fixed_capacity(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                InferenceCache& cache) {
  auto& cached = cache.state<KvCache>(layer_number_);
  if (!cached.k.defined()) {
    auto sizes = k.sizes().vec();
    sizes[1] = cache.capacity();
    cached.k = at::zeros(sizes, k.options());
    cached.v = at::zeros(sizes, v.options());
  }
  const auto& positions = cache.positions();
  cached.k.index_copy_(1, positions, k);
  cached.v.index_copy_(1, positions, v);
  // Query i may see the keys at positions <= its own; the slots past it are zeros or stale.
  auto allowed = at::arange(cache.capacity(), positions.options()).unsqueeze(0) <= positions.unsqueeze(1);
  return core_attention_->forward_with_mask(q, cached.k, cached.v, allowed);
}

}  // namespace strata
