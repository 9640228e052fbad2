#include "strata/layers/gated_delta_net.h"

#include <torch/nn/modules/conv.h>

#include <cmath>

#include "strata/core/dtype.h"
#include "strata/kernels/gated_delta_rule_step.h"
#include "strata/kernels/l2_normalize_heads.h"
#include "strata/layers/gated_delta_rule.h"

namespace strata {

namespace {

// Per value head: b (beta) and a (the decay's input); dt_bias starts at ones, as HF and Megatron.
GatedDeltaNetGates gated_delta_net_gates(const TransformerConfig& c) {
  validate_linear_attention_fields(c, "GatedDeltaNet");
  return {.in_proj_rows = 2 * c.linear_num_value_heads,
          .dt_bias_size = c.linear_num_value_heads,
          .A_log_size = c.linear_num_value_heads,
          .dt_bias = [](int64_t size) { return at::ones({size}); }};
}

}  // namespace

GatedDeltaNet::GatedDeltaNet(const LayerArgs& args, const GatedDeltaNetSubmodules& sub)
    : GatedDeltaNetBase(args, sub, "GatedDeltaNet", gated_delta_net_gates(*args.config)) {}

Builder<slots::SelfAttention> GatedDeltaNet::builder(GatedDeltaNetSubmodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) {
    return std::make_shared<GatedDeltaNet>(args, submodules);
  };
}

MixerOutput GatedDeltaNet::mix(const at::Tensor& hidden, GatedDeltaNetState* state, Form form,
                               const std::optional<at::Tensor>& cu_seqlens) {
  const auto batch = hidden.size(0), seq = hidden.size(1);
  const auto key_size = num_key_heads_ * key_head_dim_, value_size = num_value_heads_ * value_head_dim_;
  const auto conv_channels = conv1d_->weight.size(0);
  auto parts = in_proj_->forward(hidden).output.split_with_sizes(
      {conv_channels, value_size, num_value_heads_, num_value_heads_}, -1);
  const auto& z = parts[1];
  const auto& b = parts[2];
  const auto& a = parts[3];

  const auto conv_out = conv_silu(parts[0], state, cu_seqlens);  // [B, T, channels]
  auto qkv = conv_out.split_with_sizes({key_size, key_size, value_size}, -1);

  const auto heads_per_key = num_value_heads_ / num_key_heads_;
  const double q_scale = 1.0 / std::sqrt(static_cast<double>(key_head_dim_));
  auto key_rows = [&](const at::Tensor& t) { return t.reshape({batch, seq, num_key_heads_, key_head_dim_}); };
  const bool reduced = at_least_float(qkv[0].scalar_type()) != qkv[0].scalar_type();
  at::Tensor q, k;
  if (form == Form::chunked && reduced && kernels::l2_normalize_heads_kernels_take(key_rows(qkv[0]))) {
    // Training and prefill in bfloat16 / float16 on CUDA: one kernel each way normalises in
    // float32 (as flash-linear-attention's in-kernel l2norm) and writes q and k once per value
    // head, heads-first, in the input dtype, which the fused delta rule reads fastest.
    q = kernels::l2_normalize_heads(key_rows(qkv[0]), heads_per_key, q_scale, kL2NormalizeEps);
    k = kernels::l2_normalize_heads(key_rows(qkv[1]), heads_per_key, 1.0, kL2NormalizeEps);
  } else {
    // HF's ops: q and k normalised in the input dtype, q scaled in float32, inside its kernel.
    // Both come out [B, T, H, Dk] but heads-first in memory, as the delta rule reads them, so
    // the rule copies neither: one pass widens (and scales: a one-element float tensor promotes
    // the product, so it is float(x) * scale as HF has it), one lays out and repeats the key heads.
    auto per_value_head = [&](const at::Tensor& t, double scale) {
      auto normed = l2_normalize(key_rows(t));
      const auto wide_dtype = at_least_float(normed.scalar_type());
      auto wide =
          scale == 1.0 ? normed.to(wide_dtype) : normed * at::full({1}, scale, normed.options().dtype(wide_dtype));
      return wide.transpose(1, 2)
          .unsqueeze(2)
          .expand({batch, num_key_heads_, heads_per_key, seq, key_head_dim_})
          .reshape({batch, num_value_heads_, seq, key_head_dim_})
          .transpose(1, 2);
    };
    q = per_value_head(qkv[0], q_scale);
    k = per_value_head(qkv[1], 1.0);
  }
  auto v = qkv[2].reshape({batch, seq, num_value_heads_, value_head_dim_});
  auto beta = at::sigmoid(b);
  auto g = -at::exp(at_least_float(A_log_)) * at::softplus(at_least_float(a) + dt_bias_);

  at::Tensor out;  // [B, T, H, Dv]
  if (form == Form::recurrent && seq == 1) {
    // One new token (decoding): the fused step reads and writes the cached state once, in place.
    if (!state->recurrent.defined())
      state->recurrent = at::zeros({batch, num_value_heads_, key_head_dim_, value_head_dim_}, g.options());
    auto token = [](const at::Tensor& t) { return t.select(1, 0); };
    out = kernels::gated_delta_rule_step_(token(q), token(k), token(v), token(g), token(beta), state->recurrent)
              .unsqueeze(1);
  } else {
    auto initial = state && state->recurrent.defined() ? std::optional<at::Tensor>(state->recurrent) : std::nullopt;
    auto rule = form == Form::chunked ? gated_delta_rule_chunked(q, k, v, g, beta, chunk_size_, initial, cu_seqlens)
                                      : gated_delta_rule_recurrent(q, k, v, g, beta, initial);
    if (state) update_state(state->recurrent, rule.final_state);
    out = rule.out;
  }

  auto gated = out_norm_->forward(out, z.reshape({batch, seq, num_value_heads_, value_head_dim_}));
  return out_proj_->forward(gated.flatten(2));
}

}  // namespace strata
