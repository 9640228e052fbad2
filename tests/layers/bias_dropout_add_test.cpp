// Bias-dropout-add's branch: what forward adds to the residual, alone (hyper-connections mix it
// into their streams themselves), and the interface's default for a module that defines only
// forward.
#include "strata/layers/bias_dropout_add.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata {
namespace {

TEST(BiasDropoutAdd, BranchIsWhatForwardAddsToTheResidual) {
  auto config = testing::small_config();
  BiasDropoutAdd bda(LayerArgs{.config = config});
  const MixerOutput with_bias{at::randn({2, 3, config->hidden_size}), at::randn({config->hidden_size})};
  const MixerOutput without_bias{at::randn({2, 3, config->hidden_size}), std::nullopt};
  for (const auto* out : {&with_bias, &without_bias}) {
    const auto residual = at::randn({2, 3, config->hidden_size});
    EXPECT_TRUE(at::equal(bda.branch(*out), bda.forward(*out, at::zeros({}))));
    EXPECT_TRUE(at::equal(residual + bda.branch(*out), bda.forward(*out, residual)));
  }
}

// A module that only says how it adds gets branch() from the interface: forward with a zero
// residual.
struct DoublingBda : BiasDropoutAddModule {
  at::Tensor forward(const MixerOutput& out, const at::Tensor& residual) override { return residual + 2 * out.output; }
};

TEST(BiasDropoutAdd, InterfaceBranchIsForwardWithAZeroResidual) {
  DoublingBda bda;
  const MixerOutput out{at::randn({2, 3, 8}), std::nullopt};
  EXPECT_TRUE(at::equal(bda.branch(out), 2 * out.output));
}

}  // namespace
}  // namespace strata
