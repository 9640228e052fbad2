#pragma once
// The feed-forward block: linear_fc1 -> activation (gated: act(gate) * up) -> linear_fc2.
// With a gated linear unit, fc1's output rows are [gate; up] as in Megatron.
#include "strata/spec/slots.h"

namespace strata {

struct MlpSubmodules {
  Builder<slots::LinearFc1> linear_fc1;
  Builder<slots::LinearFc2> linear_fc2;
};

class Mlp : public ChannelMixer {
 public:
  // What the MLP itself needs; the rest of what a layer passes is dropped by as_mlp_submodule.
  Mlp(std::shared_ptr<const TransformerConfig> config, const MlpSubmodules& submodules, int64_t ffn_hidden_size,
      bool is_expert, const ProcessGroups& pg);

  // Adapter for the mlp slot: takes the full LayerArgs the layer passes and keeps what Mlp uses
  // (ffn_hidden_size defaults to config.ffn_hidden_size).
  static Builder<slots::Mlp> as_mlp_submodule(MlpSubmodules submodules);

  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

 private:
  Activation activation_;
  bool gated_;
  double clamp_value_;
  std::shared_ptr<LinearModule> linear_fc1_;
  std::shared_ptr<LinearModule> linear_fc2_;
};

// act(x) for the configured activation.
at::Tensor activate(const at::Tensor& x, Activation activation);

// act(gate) * up from fc1's output [..., 2F] = [gate; up]; with clamp_value > 0 (DeepSeek-V4's
// swiglu_limit) the gate is first clamped to at most clamp_value and up to [-clamp_value, clamp_value].
at::Tensor gated_activation(const at::Tensor& gate_up, Activation activation, double clamp_value);

}  // namespace strata
