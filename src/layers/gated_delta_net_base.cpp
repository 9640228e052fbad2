#include "strata/layers/gated_delta_net_base.h"

#include <torch/nn/modules/conv.h>

#include <cmath>

#include "strata/core/error.h"
#include "strata/kernels/causal_conv1d.h"
#include "strata/kernels/gated_rms_norm.h"

namespace strata {

void validate_linear_attention_fields(const TransformerConfig& c, const char* mixer) {
  auto positive = [&](const char* field, int64_t value) {
    if (value < 1) fail(mixer, ": config.", field, " must be positive, got ", value);
  };
  positive("linear_num_key_heads", c.linear_num_key_heads);
  positive("linear_num_value_heads", c.linear_num_value_heads);
  positive("linear_key_head_dim", c.linear_key_head_dim);
  positive("linear_value_head_dim", c.linear_value_head_dim);
  positive("linear_conv_kernel_dim", c.linear_conv_kernel_dim);
  positive("linear_chunk_size", c.linear_chunk_size);
  if (c.linear_num_value_heads % c.linear_num_key_heads != 0)
    fail(mixer, ": config.linear_num_value_heads (", c.linear_num_value_heads,
         ") must be a multiple of linear_num_key_heads (", c.linear_num_key_heads, ")");
}

at::Tensor l2_normalize(const at::Tensor& x) {
  return x * at::rsqrt((x * x).sum(-1, /*keepdim=*/true) + kL2NormalizeEps);
}

GatedRmsNorm::GatedRmsNorm(int64_t size, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", at::ones({size}));
}

at::Tensor GatedRmsNorm::forward(const at::Tensor& x, const at::Tensor& gate) {
  return kernels::gated_rms_norm(x, gate, weight_, eps_);
}

GatedDeltaNetBase::GatedDeltaNetBase(const LayerArgs& args, const GatedDeltaNetSubmodules& sub, const char* name,
                                     const GatedDeltaNetGates& gates)
    : name_(name), layer_number_(args.layer_number) {
  const auto& c = *args.config;
  num_key_heads_ = c.linear_num_key_heads;
  num_value_heads_ = c.linear_num_value_heads;
  key_head_dim_ = c.linear_key_head_dim;
  value_head_dim_ = c.linear_value_head_dim;
  conv_kernel_ = c.linear_conv_kernel_dim;
  chunk_size_ = c.linear_chunk_size;
  const auto key_size = num_key_heads_ * key_head_dim_, value_size = num_value_heads_ * value_head_dim_;
  const auto conv_channels = 2 * key_size + value_size;
  const auto projected = conv_channels + value_size + gates.in_proj_rows;  // q k v | z | the gates

  // No biases, as in Qwen3-Next and Megatron's default.
  in_proj_ = register_module("in_proj", sub.in_proj(ColumnLinearArgs{
      .config = args.config, .input_size = c.hidden_size, .output_size = projected, .init_std = c.init_method_std,
      .name = "in_proj", .pg = args.pg}));
  // Only the weight is used (forward runs the conv itself, to prepend the decoding state); the
  // module gives it nn.Conv1d's name, shape and default initialisation, as HF and Megatron have.
  conv1d_ = register_module("conv1d", std::make_shared<torch::nn::Conv1dImpl>(
      torch::nn::Conv1dOptions(conv_channels, conv_channels, conv_kernel_).groups(conv_channels).bias(false)));
  dt_bias_ = register_parameter("dt_bias", gates.dt_bias(gates.dt_bias_size));
  // A = -exp(A_log) uniform in [-16, -1] (Megatron's A_init_range; HF draws from (0, 16]).
  A_log_ = register_parameter("A_log", at::log(at::empty({gates.A_log_size}).uniform_(1, 16)));
  out_norm_ = register_module("out_norm", std::make_shared<GatedRmsNorm>(value_head_dim_, c.layernorm_epsilon));
  // As for attention's linear_proj, residual branches add up: init scaled by 1/sqrt(2 * num_layers).
  out_proj_ = register_module("out_proj", sub.out_proj(RowLinearArgs{
      .config = args.config, .input_size = value_size, .output_size = c.hidden_size, .skip_bias_add = true,
      .init_std = c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)), .name = "out_proj",
      .pg = args.pg}));
}

MixerOutput GatedDeltaNetBase::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  if (!ctx.cache) return mix(hidden, nullptr, Form::chunked, ctx.cu_seqlens);
  if (ctx.cu_seqlens)
    fail(name_, ": packed documents (cu_seqlens) with a decoding cache: the cache holds one state per row, ",
         "expected one or the other");
  auto& state = ctx.cache->state<GatedDeltaNetState>(layer_number_);
  return mix(hidden, &state, hidden.size(1) == 1 ? Form::recurrent : Form::chunked, std::nullopt);
}

MixerOutput GatedDeltaNetBase::forward_recurrent(const at::Tensor& hidden, GatedDeltaNetState& state) {
  return mix(hidden, &state, Form::recurrent, std::nullopt);
}

GatedDeltaNetState GatedDeltaNetBase::initial_state(int64_t batch, at::Device device) const {
  auto options = conv1d_->weight.options().device(device);
  GatedDeltaNetState state;
  state.conv = at::zeros({batch, conv1d_->weight.size(0), conv_kernel_ - 1}, options);
  state.recurrent = at::zeros({batch, num_value_heads_, key_head_dim_, value_head_dim_}, options.dtype(at::kFloat));
  return state;
}

at::Tensor GatedDeltaNetBase::conv_silu(const at::Tensor& inputs, GatedDeltaNetState* state,
                                        const std::optional<at::Tensor>& cu_seqlens) {
  // Zero history (at each document's start when packed): the fused op reads the slice of
  // in_proj's output in place and writes [B, T, channels] directly (its twin, off CUDA, is the
  // padded at::conv1d).
  if (!state) return kernels::causal_conv1d_silu(inputs, conv1d_->weight, cu_seqlens);
  const auto channels = conv1d_->weight.size(0);
  auto columns = inputs.transpose(1, 2);  // [B, channels, T]
  auto history = state->conv.defined() ? state->conv.to(columns.scalar_type())
                                       : at::zeros({inputs.size(0), channels, conv_kernel_ - 1}, columns.options());
  auto window = at::cat({history, columns}, -1);
  update_state(state->conv, window.narrow(-1, window.size(-1) - (conv_kernel_ - 1), conv_kernel_ - 1));
  auto out = at::conv1d(window, conv1d_->weight, /*bias=*/{}, /*stride=*/1, /*padding=*/at::IntArrayRef{0},
                        /*dilation=*/1, /*groups=*/channels);
  return at::silu(out).transpose(1, 2);
}

}  // namespace strata
