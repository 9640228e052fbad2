#include "strata/layers/gated_delta_net.h"

#include <torch/nn/modules/conv.h>

#include <cmath>

#include "strata/core/dtype.h"
#include "strata/core/error.h"
#include "strata/kernels/causal_conv1d.h"
#include "strata/kernels/gated_delta_rule_step.h"
#include "strata/kernels/gated_rms_norm.h"
#include "strata/layers/gated_delta_rule.h"

namespace strata {

namespace {

void validate_linear_attention_fields(const TransformerConfig& c) {
  auto positive = [](const char* field, int64_t value) {
    if (value < 1) fail("GatedDeltaNet: config.", field, " must be positive, got ", value);
  };
  positive("linear_num_key_heads", c.linear_num_key_heads);
  positive("linear_num_value_heads", c.linear_num_value_heads);
  positive("linear_key_head_dim", c.linear_key_head_dim);
  positive("linear_value_head_dim", c.linear_value_head_dim);
  positive("linear_conv_kernel_dim", c.linear_conv_kernel_dim);
  positive("linear_chunk_size", c.linear_chunk_size);
  if (c.linear_num_value_heads % c.linear_num_key_heads != 0)
    fail("GatedDeltaNet: config.linear_num_value_heads (", c.linear_num_value_heads,
         ") must be a multiple of linear_num_key_heads (", c.linear_num_key_heads, ")");
}

// x / ||x|| per head, as HF's (and FLA's) l2norm: x * rsqrt(sum x^2 + 1e-6), in x's dtype.
at::Tensor l2_normalize(const at::Tensor& x) { return x * at::rsqrt((x * x).sum(-1, /*keepdim=*/true) + 1e-6); }

}  // namespace

GatedRmsNorm::GatedRmsNorm(int64_t size, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", at::ones({size}));
}

at::Tensor GatedRmsNorm::forward(const at::Tensor& x, const at::Tensor& gate) {
  return kernels::gated_rms_norm(x, gate, weight_, eps_);
}

GatedDeltaNet::GatedDeltaNet(const LayerArgs& args, const GatedDeltaNetSubmodules& sub)
    : layer_number_(args.layer_number) {
  const auto& c = *args.config;
  validate_linear_attention_fields(c);
  num_key_heads_ = c.linear_num_key_heads;
  num_value_heads_ = c.linear_num_value_heads;
  key_head_dim_ = c.linear_key_head_dim;
  value_head_dim_ = c.linear_value_head_dim;
  conv_kernel_ = c.linear_conv_kernel_dim;
  chunk_size_ = c.linear_chunk_size;
  const auto key_size = num_key_heads_ * key_head_dim_, value_size = num_value_heads_ * value_head_dim_;
  const auto conv_channels = 2 * key_size + value_size;
  const auto projected = conv_channels + value_size + 2 * num_value_heads_;  // q k v | z | b | a

  // No biases, as in Qwen3-Next and Megatron's default.
  in_proj_ = register_module("in_proj", sub.in_proj(ColumnLinearArgs{
      .config = args.config, .input_size = c.hidden_size, .output_size = projected, .init_std = c.init_method_std,
      .name = "in_proj", .pg = args.pg}));
  // Only the weight is used (forward runs the conv itself, to prepend the decoding state); the
  // module gives it nn.Conv1d's name, shape and default initialisation, as HF and Megatron have.
  conv1d_ = register_module("conv1d", std::make_shared<torch::nn::Conv1dImpl>(
      torch::nn::Conv1dOptions(conv_channels, conv_channels, conv_kernel_).groups(conv_channels).bias(false)));
  dt_bias_ = register_parameter("dt_bias", at::ones({num_value_heads_}));
  // A = -exp(A_log) uniform in [-16, -1] (Megatron's A_init_range; HF draws from (0, 16]).
  A_log_ = register_parameter("A_log", at::log(at::empty({num_value_heads_}).uniform_(1, 16)));
  out_norm_ = register_module("out_norm", std::make_shared<GatedRmsNorm>(value_head_dim_, c.layernorm_epsilon));
  // As for attention's linear_proj, residual branches add up: init scaled by 1/sqrt(2 * num_layers).
  out_proj_ = register_module("out_proj", sub.out_proj(RowLinearArgs{
      .config = args.config, .input_size = value_size, .output_size = c.hidden_size, .skip_bias_add = true,
      .init_std = c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)), .name = "out_proj",
      .pg = args.pg}));
}

Builder<slots::SelfAttention> GatedDeltaNet::builder(GatedDeltaNetSubmodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) {
    return std::make_shared<GatedDeltaNet>(args, submodules);
  };
}

MixerOutput GatedDeltaNet::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  if (!ctx.cache) return mix(hidden, nullptr, Form::chunked, ctx.cu_seqlens);
  if (ctx.cu_seqlens)
    fail("GatedDeltaNet: packed documents (cu_seqlens) with a decoding cache: the cache holds one state per row, "
         "expected one or the other");
  auto& state = ctx.cache->state<GatedDeltaNetState>(layer_number_);
  return mix(hidden, &state, hidden.size(1) == 1 ? Form::recurrent : Form::chunked, std::nullopt);
}

MixerOutput GatedDeltaNet::forward_recurrent(const at::Tensor& hidden, GatedDeltaNetState& state) {
  return mix(hidden, &state, Form::recurrent, std::nullopt);
}

GatedDeltaNetState GatedDeltaNet::initial_state(int64_t batch, at::Device device) const {
  auto options = conv1d_->weight.options().device(device);
  GatedDeltaNetState state;
  state.conv = at::zeros({batch, conv1d_->weight.size(0), conv_kernel_ - 1}, options);
  state.recurrent = at::zeros({batch, num_value_heads_, key_head_dim_, value_head_dim_}, options.dtype(at::kFloat));
  return state;
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

  // Causal depthwise conv: each output sees its own and the K - 1 previous inputs; before the
  // first token those are zeros, while decoding they are the state's.
  at::Tensor conv_out;  // [B, T, channels], after the SiLU
  if (state) {
    auto inputs = parts[0].transpose(1, 2);  // [B, channels, T]
    auto history = state->conv.defined() ? state->conv.to(inputs.scalar_type())
                                         : at::zeros({batch, conv_channels, conv_kernel_ - 1}, inputs.options());
    auto window = at::cat({history, inputs}, -1);
    update_state(state->conv, window.narrow(-1, window.size(-1) - (conv_kernel_ - 1), conv_kernel_ - 1));
    conv_out = at::conv1d(window, conv1d_->weight, /*bias=*/{}, /*stride=*/1, /*padding=*/at::IntArrayRef{0},
                          /*dilation=*/1, /*groups=*/conv_channels);
    conv_out = at::silu(conv_out).transpose(1, 2);
  } else {
    // Zero history (at each document's start when packed): the fused op reads the slice of
    // in_proj's output in place and writes [B, T, channels] directly (its twin, off CUDA, is the
    // padded at::conv1d).
    conv_out = kernels::causal_conv1d_silu(parts[0], conv1d_->weight, cu_seqlens);
  }
  auto qkv = conv_out.split_with_sizes({key_size, key_size, value_size}, -1);

  // HF normalises q and k in the input dtype and scales q in float32, inside its kernel. Both
  // come out [B, T, H, Dk] but heads-first in memory, as the delta rule reads them, so the rule
  // copies neither: one pass widens (and scales: a one-element float tensor promotes the
  // product, so it is float(x) * scale as HF has it), one lays out and repeats the key heads.
  const auto heads_per_key = num_value_heads_ / num_key_heads_;
  auto per_value_head = [&](const at::Tensor& t, double scale) {
    auto normed = l2_normalize(t.reshape({batch, seq, num_key_heads_, key_head_dim_}));
    const auto wide_dtype = at_least_float(normed.scalar_type());
    auto wide = scale == 1.0 ? normed.to(wide_dtype) : normed * at::full({1}, scale, normed.options().dtype(wide_dtype));
    return wide.transpose(1, 2)
        .unsqueeze(2)
        .expand({batch, num_key_heads_, heads_per_key, seq, key_head_dim_})
        .reshape({batch, num_value_heads_, seq, key_head_dim_})
        .transpose(1, 2);
  };
  auto q = per_value_head(qkv[0], 1.0 / std::sqrt(static_cast<double>(key_head_dim_)));
  auto k = per_value_head(qkv[1], 1.0);
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
