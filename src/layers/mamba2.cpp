#include "strata/layers/mamba2.h"

#include <torch/nn/modules/conv.h>

#include <cmath>

#include "strata/core/error.h"

namespace strata {

namespace {

// dt_bias = softplus^-1(dt) with dt log-uniform in [min, max], floored: Mamba2's initialisation,
// which spreads the heads over time scales from fast to slow.
at::Tensor initial_dt_bias(const TransformerConfig& c, int64_t num_heads) {
  const auto log_min = std::log(c.mamba_time_step_min), log_max = std::log(c.mamba_time_step_max);
  auto dt = at::exp(at::rand({num_heads}) * (log_max - log_min) + log_min).clamp_min(c.mamba_time_step_floor);
  return dt + at::log(-at::expm1(-dt));
}

}  // namespace

GroupedGatedRmsNorm::GroupedGatedRmsNorm(int64_t size, int64_t groups, double eps) : groups_(groups), eps_(eps) {
  if (groups < 1 || size % groups != 0)
    fail("GroupedGatedRmsNorm: size ", size, " must split into ", groups, " equal groups");
  weight_ = register_parameter("weight", at::ones({size}));
}

at::Tensor GroupedGatedRmsNorm::forward(const at::Tensor& x, const at::Tensor& gate) {
  auto gated = x.to(at::kFloat) * at::silu(gate.to(at::kFloat));
  auto sizes = gated.sizes().vec();
  auto grouped = gated.unflatten(-1, {groups_, sizes.back() / groups_});
  auto normed = (grouped * at::rsqrt(grouped.pow(2).mean(-1, /*keepdim=*/true) + eps_)).view(sizes);
  return weight_ * normed.to(x.scalar_type());
}

Mamba2Mixer::Mamba2Mixer(const LayerArgs& args, const Mamba2Submodules& sub) : layer_number_(args.layer_number) {
  const auto& c = *args.config;
  validate_mamba(c);
  num_heads_ = c.mamba_heads();
  head_dim_ = c.mamba_head_dim;
  state_dim_ = c.mamba_state_dim;
  num_groups_ = c.mamba_num_groups;
  conv_kernel_ = c.mamba_conv_kernel_dim;
  chunk_size_ = c.mamba_chunk_size;
  time_step_limit_min_ = c.mamba_time_step_limit_min;
  time_step_limit_max_ = c.mamba_time_step_limit_max;
  const auto inner = num_heads_ * head_dim_;
  const auto conv_channels = inner + 2 * num_groups_ * state_dim_;  // x, B and C

  in_proj_ = register_module("in_proj", sub.in_proj(ColumnLinearArgs{
      .config = args.config, .input_size = c.hidden_size, .output_size = inner + conv_channels + num_heads_,
      .bias = c.mamba_proj_bias, .init_std = c.init_method_std, .name = "in_proj", .pg = args.pg}));
  // Only the weight and bias are used (forward runs the conv itself, to prepend the decoding
  // state); the module gives them nn.Conv1d's names, shapes and default initialisation.
  conv1d_ = register_module("conv1d", std::make_shared<torch::nn::Conv1dImpl>(
      torch::nn::Conv1dOptions(conv_channels, conv_channels, conv_kernel_).groups(conv_channels)
          .bias(c.mamba_conv_bias)));
  dt_bias_ = register_parameter("dt_bias", initial_dt_bias(c, num_heads_));
  // A = -exp(A_log) uniform in [-16, -1] (Megatron's A_init_range).
  A_log_ = register_parameter("A_log", at::log(at::empty({num_heads_}).uniform_(1, 16)));
  D_ = register_parameter("D", at::ones({num_heads_}));
  norm_ = register_module("norm", std::make_shared<GroupedGatedRmsNorm>(inner, num_groups_, c.layernorm_epsilon));
  // As for attention's linear_proj, residual branches add up: init scaled by 1/sqrt(2 * num_layers).
  out_proj_ = register_module("out_proj", sub.out_proj(RowLinearArgs{
      .config = args.config, .input_size = inner, .output_size = c.hidden_size, .bias = c.mamba_proj_bias,
      .skip_bias_add = true, .init_std = c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)),
      .name = "out_proj", .pg = args.pg}));
}

Builder<slots::SelfAttention> Mamba2Mixer::builder(Mamba2Submodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) {
    return std::make_shared<Mamba2Mixer>(args, submodules);
  };
}

MixerOutput Mamba2Mixer::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  refuse_packed_documents(ctx, "Mamba2Mixer");
  if (!ctx.cache) return mix(hidden, nullptr, Form::chunked);
  auto& state = ctx.cache->state<Mamba2State>(layer_number_);
  return mix(hidden, &state, hidden.size(1) == 1 ? Form::recurrent : Form::chunked);
}

MixerOutput Mamba2Mixer::forward_recurrent(const at::Tensor& hidden, Mamba2State& state) {
  return mix(hidden, &state, Form::recurrent);
}

Mamba2State Mamba2Mixer::initial_state(int64_t batch, at::Device device) const {
  auto options = conv1d_->weight.options().device(device);
  Mamba2State state;
  state.conv = at::zeros({batch, conv1d_->weight.size(0), conv_kernel_ - 1}, options);
  state.ssm = at::zeros({batch, num_heads_, head_dim_, state_dim_}, options.dtype(at::kFloat));
  return state;
}

at::Tensor Mamba2Mixer::step_sizes(const at::Tensor& dt_input) const {
  return at::softplus(dt_input.to(at::kFloat) + dt_bias_.to(at::kFloat))
      .clamp(time_step_limit_min_, time_step_limit_max_);
}

MixerOutput Mamba2Mixer::mix(const at::Tensor& hidden, Mamba2State* state, Form form) {
  const auto batch = hidden.size(0), seq = hidden.size(1);
  const auto inner = num_heads_ * head_dim_, group_width = num_groups_ * state_dim_;
  const auto conv_channels = conv1d_->weight.size(0);
  // in_proj's rows are [z | x B C | dt], as in HF and Megatron.
  auto parts = in_proj_->forward(hidden).output.split_with_sizes({inner, conv_channels, num_heads_}, -1);
  const auto& gate = parts[0];

  // Causal depthwise conv: each output sees its own and the K - 1 previous inputs; before the
  // first token those are zeros, while decoding they are the state's.
  auto inputs = parts[1].transpose(1, 2);  // [B, channels, T]
  auto history = state && state->conv.defined() ? state->conv.to(inputs.scalar_type())
                                                : at::zeros({batch, conv_channels, conv_kernel_ - 1}, inputs.options());
  auto window = at::cat({history, inputs}, -1);
  if (state) update_state(state->conv, window.narrow(-1, window.size(-1) - (conv_kernel_ - 1), conv_kernel_ - 1));
  auto conv_out = at::conv1d(window, conv1d_->weight, conv1d_->bias, /*stride=*/1, /*padding=*/at::IntArrayRef{0},
                             /*dilation=*/1, /*groups=*/conv_channels);
  auto xbc = at::silu(conv_out).transpose(1, 2).split_with_sizes({inner, group_width, group_width}, -1);
  auto x = xbc[0].reshape({batch, seq, num_heads_, head_dim_});
  auto B = xbc[1].reshape({batch, seq, num_groups_, state_dim_});
  auto C = xbc[2].reshape({batch, seq, num_groups_, state_dim_});

  auto dt = step_sizes(parts[2]);
  auto A = -at::exp(A_log_.to(at::kFloat));
  auto initial = state && state->ssm.defined() ? std::optional<at::Tensor>(state->ssm) : std::nullopt;
  auto scan = form == Form::chunked ? ssd_chunked(x, dt, A, B, C, chunk_size_, initial)
                                    : ssd_recurrent(x, dt, A, B, C, initial);
  if (state) update_state(state->ssm, scan.final_state);

  auto y = scan.y + D_.to(at::kFloat).unsqueeze(-1) * x.to(at::kFloat);  // the D skip term, float32
  return out_proj_->forward(norm_->forward(y.flatten(2), gate).to(gate.scalar_type()));
}

}  // namespace strata
