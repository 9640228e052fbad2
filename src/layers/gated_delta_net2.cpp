#include "strata/layers/gated_delta_net2.h"

#include <torch/nn/modules/conv.h>

#include <cmath>

#include "delta_rule_inputs.h"
#include "strata/core/dtype.h"
#include "strata/layers/gated_delta_rule2.h"

namespace strata {

namespace {

// Megatron's GatedDeltaNet2._reset_dt_bias: dt log-uniform in [1e-3, 0.1] (at least 1e-4), and
// dt_bias its softplus inverse, so that softplus(0 + dt_bias) starts as that step size.
at::Tensor initial_dt_bias(int64_t size) {
  auto dt = at::exp(at::rand({size}) * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3)).clamp_min(1e-4);
  return dt + at::log(-at::expm1(-dt));
}

// Per key channel: f (the decay's input) and b (erase); per value channel: w (write). dt_bias has
// one entry per key channel, A_log one per key head.
GatedDeltaNetGates gated_delta_net2_gates(const TransformerConfig& c) {
  validate_linear_attention_fields(c, "GatedDeltaNet2");
  const auto key_size = c.linear_num_key_heads * c.linear_key_head_dim;
  return {.in_proj_rows = 2 * key_size + c.linear_num_value_heads * c.linear_value_head_dim,
          .dt_bias_size = key_size,
          .A_log_size = c.linear_num_key_heads,
          .dt_bias = initial_dt_bias};
}

}  // namespace

GatedDeltaNet2::GatedDeltaNet2(const LayerArgs& args, const GatedDeltaNetSubmodules& sub)
    : GatedDeltaNetBase(args, sub, "GatedDeltaNet2", gated_delta_net2_gates(*args.config)) {}

Builder<slots::SelfAttention> GatedDeltaNet2::builder(GatedDeltaNetSubmodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) {
    return std::make_shared<GatedDeltaNet2>(args, submodules);
  };
}

MixerOutput GatedDeltaNet2::mix(const at::Tensor& hidden, GatedDeltaNetState* state, Form form,
                                const std::optional<at::Tensor>& cu_seqlens) {
  const auto batch = hidden.size(0), seq = hidden.size(1);
  const auto key_size = num_key_heads_ * key_head_dim_, value_size = num_value_heads_ * value_head_dim_;
  const auto conv_channels = conv1d_->weight.size(0);
  auto parts = in_proj_->forward(hidden).output.split_with_sizes(
      {conv_channels, value_size, key_size, key_size, value_size}, -1);  // q k v | z | f | b | w
  const auto& z = parts[1];
  const auto& f = parts[2];
  const auto& b = parts[3];
  const auto& w = parts[4];

  const auto conv_out = conv_silu(parts[0], state, cu_seqlens);  // over q k v: [B, T, channels]
  auto qkv = conv_out.split_with_sizes({key_size, key_size, value_size}, -1);

  // Key-channel tensors [B, T, nk, dk] repeated to the value heads they serve: key head h serves
  // value heads h r .. h r + r - 1 (Megatron's repeat_interleave on the head dimension).
  auto key_heads = [&](const at::Tensor& t) { return t.reshape({batch, seq, num_key_heads_, key_head_dim_}); };
  auto repeated = [&](const at::Tensor& t) { return per_value_head(key_heads(t), num_value_heads_, 2); };
  // q scaled after widening, as Megatron's kernel scales its float32 copy.
  const auto scale = 1.0 / std::sqrt(static_cast<double>(key_head_dim_));
  auto q = repeated(at_least_float(l2_normalize(key_heads(qkv[0]))) * scale);
  auto k = repeated(l2_normalize(key_heads(qkv[1])));
  auto v = qkv[2].reshape({batch, seq, num_value_heads_, value_head_dim_});
  // The log decay in float32 (Megatron's _compute_gates): A_log per key head, over its channels.
  auto rate = at::exp(at_least_float(A_log_)).repeat_interleave(key_head_dim_);
  auto g = repeated(-rate * at::softplus(at_least_float(f) + dt_bias_));
  auto erase = repeated(at::sigmoid(b));
  auto write = at::sigmoid(w).reshape({batch, seq, num_value_heads_, value_head_dim_});

  auto initial = state && state->recurrent.defined() ? std::optional<at::Tensor>(state->recurrent) : std::nullopt;
  auto rule = form == Form::chunked
                  ? gated_delta_rule2_chunked(q, k, v, g, erase, write, chunk_size_, initial, cu_seqlens)
                  : gated_delta_rule2_recurrent(q, k, v, g, erase, write, initial);
  if (state) update_state(state->recurrent, rule.final_state);

  auto gated = out_norm_->forward(rule.out, z.reshape({batch, seq, num_value_heads_, value_head_dim_}));
  return out_proj_->forward(gated.flatten(2));
}

}  // namespace strata
