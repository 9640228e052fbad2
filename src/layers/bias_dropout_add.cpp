#include "strata/layers/bias_dropout_add.h"

namespace strata {

BiasDropoutAdd::BiasDropoutAdd(const LayerArgs& args) : dropout_(args.config->hidden_dropout) {}

at::Tensor BiasDropoutAdd::forward(const MixerOutput& out, const at::Tensor& residual) { return residual + branch(out); }

at::Tensor BiasDropoutAdd::branch(const MixerOutput& out) {
  auto x = out.bias ? out.output + *out.bias : out.output;
  if (dropout_ > 0.0 && is_training()) x = at::dropout(x, dropout_, /*train=*/true);
  return x;
}

}  // namespace strata
