#include "strata/layers/gated_delta_net2.h"

#include <torch/nn/modules/conv.h>

#include <cmath>

#include "strata/core/dtype.h"
#include "strata/core/error.h"
#include "strata/kernels/causal_conv1d.h"
#include "strata/layers/gated_delta_rule2.h"

namespace strata {

namespace {

void validate_linear_attention_fields(const TransformerConfig& c) {
  auto positive = [](const char* field, int64_t value) {
    if (value < 1) fail("GatedDeltaNet2: config.", field, " must be positive, got ", value);
  };
  positive("linear_num_key_heads", c.linear_num_key_heads);
  positive("linear_num_value_heads", c.linear_num_value_heads);
  positive("linear_key_head_dim", c.linear_key_head_dim);
  positive("linear_value_head_dim", c.linear_value_head_dim);
  positive("linear_conv_kernel_dim", c.linear_conv_kernel_dim);
  positive("linear_chunk_size", c.linear_chunk_size);
  if (c.linear_num_value_heads % c.linear_num_key_heads != 0)
    fail("GatedDeltaNet2: config.linear_num_value_heads (", c.linear_num_value_heads,
         ") must be a multiple of linear_num_key_heads (", c.linear_num_key_heads, ")");
}

// x / ||x|| per head, as FLA's l2norm (Megatron's): x * rsqrt(sum x^2 + 1e-6), in x's dtype.
// (gated_delta_net.cpp has the same helper, private to that file.)
at::Tensor l2_normalize(const at::Tensor& x) { return x * at::rsqrt((x * x).sum(-1, /*keepdim=*/true) + 1e-6); }

// Megatron's GatedDeltaNet2._reset_dt_bias: dt log-uniform in [1e-3, 0.1] (at least 1e-4), and
// dt_bias its softplus inverse, so that softplus(0 + dt_bias) starts as that step size.
at::Tensor initial_dt_bias(int64_t size) {
  auto dt = at::exp(at::rand({size}) * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3)).clamp_min(1e-4);
  return dt + at::log(-at::expm1(-dt));
}

}  // namespace

GatedDeltaNet2::GatedDeltaNet2(const LayerArgs& args, const GatedDeltaNetSubmodules& sub)
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
  const auto projected = conv_channels + value_size + 2 * key_size + value_size;  // q k v | z | f | b | w

  // No biases, as in Megatron's default.
  in_proj_ = register_module("in_proj", sub.in_proj(ColumnLinearArgs{
      .config = args.config, .input_size = c.hidden_size, .output_size = projected, .init_std = c.init_method_std,
      .name = "in_proj", .pg = args.pg}));
  // Only the weight is used (forward runs the conv itself, to prepend the decoding state); the
  // module gives it nn.Conv1d's name, shape and default initialisation, as Megatron has.
  conv1d_ = register_module("conv1d", std::make_shared<torch::nn::Conv1dImpl>(
      torch::nn::Conv1dOptions(conv_channels, conv_channels, conv_kernel_).groups(conv_channels).bias(false)));
  dt_bias_ = register_parameter("dt_bias", initial_dt_bias(key_size));
  // A = -exp(A_log) uniform in [-16, -1] per key head (Megatron's A_init_range).
  A_log_ = register_parameter("A_log", at::log(at::empty({num_key_heads_}).uniform_(1, 16)));
  out_norm_ = register_module("out_norm", std::make_shared<GatedRmsNorm>(value_head_dim_, c.layernorm_epsilon));
  // As for attention's linear_proj, residual branches add up: init scaled by 1/sqrt(2 * num_layers).
  out_proj_ = register_module("out_proj", sub.out_proj(RowLinearArgs{
      .config = args.config, .input_size = value_size, .output_size = c.hidden_size, .skip_bias_add = true,
      .init_std = c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)), .name = "out_proj",
      .pg = args.pg}));
}

Builder<slots::SelfAttention> GatedDeltaNet2::builder(GatedDeltaNetSubmodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) {
    return std::make_shared<GatedDeltaNet2>(args, submodules);
  };
}

MixerOutput GatedDeltaNet2::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  if (!ctx.cache) return mix(hidden, nullptr, Form::chunked, ctx.cu_seqlens);
  if (ctx.cu_seqlens)
    fail("GatedDeltaNet2: packed documents (cu_seqlens) with a decoding cache: the cache holds one state per row, "
         "expected one or the other");
  auto& state = ctx.cache->state<GatedDeltaNetState>(layer_number_);
  return mix(hidden, &state, hidden.size(1) == 1 ? Form::recurrent : Form::chunked, std::nullopt);
}

MixerOutput GatedDeltaNet2::forward_recurrent(const at::Tensor& hidden, GatedDeltaNetState& state) {
  return mix(hidden, &state, Form::recurrent, std::nullopt);
}

GatedDeltaNetState GatedDeltaNet2::initial_state(int64_t batch, at::Device device) const {
  auto options = conv1d_->weight.options().device(device);
  GatedDeltaNetState state;
  state.conv = at::zeros({batch, conv1d_->weight.size(0), conv_kernel_ - 1}, options);
  state.recurrent = at::zeros({batch, num_value_heads_, key_head_dim_, value_head_dim_}, options.dtype(at::kFloat));
  return state;
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

  // Causal depthwise conv over q k v: each output sees its own and the K - 1 previous inputs;
  // before the first token those are zeros, while decoding they are the state's.
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
    conv_out = kernels::causal_conv1d_silu(parts[0], conv1d_->weight, cu_seqlens);
  }
  auto qkv = conv_out.split_with_sizes({key_size, key_size, value_size}, -1);

  // Key-channel tensors [B, T, nk, dk] repeated to the value heads they serve: key head h serves
  // value heads h r .. h r + r - 1 (Megatron's repeat_interleave on the head dimension).
  const auto heads_per_key = num_value_heads_ / num_key_heads_;
  auto per_value_head = [&](const at::Tensor& t) {
    auto heads = t.reshape({batch, seq, num_key_heads_, key_head_dim_});  // a view when t already is
    return heads_per_key == 1 ? heads : heads.repeat_interleave(heads_per_key, 2);
  };
  // q scaled after widening, as Megatron's kernel scales its float32 copy.
  const auto scale = 1.0 / std::sqrt(static_cast<double>(key_head_dim_));
  auto key_heads = [&](const at::Tensor& t) { return t.reshape({batch, seq, num_key_heads_, key_head_dim_}); };
  auto q = per_value_head(at_least_float(l2_normalize(key_heads(qkv[0]))) * scale);
  auto k = per_value_head(l2_normalize(key_heads(qkv[1])));
  auto v = qkv[2].reshape({batch, seq, num_value_heads_, value_head_dim_});
  // The log decay in float32 (Megatron's _compute_gates): A_log per key head, over its channels.
  auto rate = at::exp(at_least_float(A_log_)).repeat_interleave(key_head_dim_);
  auto g = per_value_head(-rate * at::softplus(at_least_float(f) + dt_bias_));
  auto erase = per_value_head(at::sigmoid(b));
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
