#include "strata/layers/mlp.h"

#include <cmath>

#include "strata/kernels/swiglu.h"

namespace strata {

at::Tensor activate(const at::Tensor& x, Activation activation) {
  switch (activation) {
    case Activation::SiLU: return at::silu(x);
    case Activation::GELU: return at::gelu(x);
    case Activation::ReLU: return at::relu(x);
    case Activation::SquaredReLU: return at::relu(x).square();
  }
  return x;
}

at::Tensor gated_activation(const at::Tensor& gate_up, Activation activation, double clamp_value) {
  auto halves = gate_up.chunk(2, -1);
  if (clamp_value > 0.0) {
    halves[0] = halves[0].clamp_max(clamp_value);
    halves[1] = halves[1].clamp(-clamp_value, clamp_value);
  }
  return activate(halves[0], activation) * halves[1];
}

Mlp::Mlp(std::shared_ptr<const TransformerConfig> config, const MlpSubmodules& sub, int64_t ffn_hidden_size,
         bool is_expert, const ProcessGroups& pg)
    : activation_(config->activation_func),
      gated_(config->gated_linear_unit),
      clamp_value_(config->activation_func_clamp_value) {
  const auto& c = *config;
  linear_fc1_ = register_module("linear_fc1", sub.linear_fc1(ColumnLinearArgs{
      .config = config, .input_size = c.hidden_size, .output_size = gated_ ? 2 * ffn_hidden_size : ffn_hidden_size,
      .bias = c.add_bias_linear, .is_expert = is_expert, .init_std = c.init_method_std, .name = "linear_fc1",
      .pg = pg}));
  linear_fc2_ = register_module("linear_fc2", sub.linear_fc2(RowLinearArgs{
      .config = config, .input_size = ffn_hidden_size, .output_size = c.hidden_size, .bias = c.add_bias_linear,
      .skip_bias_add = true, .is_expert = is_expert,
      .init_std = c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)), .name = "linear_fc2",
      .pg = pg}));
}

Builder<slots::Mlp> Mlp::as_mlp_submodule(MlpSubmodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) {
    return std::make_shared<Mlp>(args.config, submodules, args.ffn_hidden_size.value_or(args.config->ffn_hidden_size),
                                 args.is_expert, args.pg);
  };
}

MixerOutput Mlp::forward(const at::Tensor& hidden, ForwardContext&) {
  auto h = linear_fc1_->forward(hidden).output;
  if (gated_ && activation_ == Activation::SiLU && clamp_value_ == 0.0) {
    h = kernels::swiglu(h);  // the fused kernel on CUDA; elsewhere the same ops as gated_activation
  } else if (gated_) {
    h = gated_activation(h, activation_, clamp_value_);
  } else {
    h = activate(h, activation_);
  }
  return linear_fc2_->forward(h);
}

}  // namespace strata
