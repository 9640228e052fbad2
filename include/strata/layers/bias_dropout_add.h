#pragma once
// residual + dropout(out + bias), with dropout probability config.hidden_dropout while training.
#include "strata/spec/args.h"
#include "strata/spec/interfaces.h"

namespace strata {

class BiasDropoutAdd : public BiasDropoutAddModule {
 public:
  explicit BiasDropoutAdd(const LayerArgs& args);
  at::Tensor forward(const MixerOutput& out, const at::Tensor& residual) override;
  at::Tensor branch(const MixerOutput& out) override;

 private:
  double dropout_;
};

// Builder for any bias-dropout-add slot.
inline auto bias_dropout_add() {
  return [](const LayerArgs& args) { return std::make_shared<BiasDropoutAdd>(args); };
}

}  // namespace strata
