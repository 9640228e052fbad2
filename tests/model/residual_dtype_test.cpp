// fp32_residual_connection: under CUDA autocast the residual stream (and mHC's streams) stays
// float32 when true and takes the autocast dtype when false; without autocast the flag changes
// nothing.
#include <gtest/gtest.h>

#include <optional>

#include "strata/backends/fused_backend.h"
#include "strata/core/compat.h"
#include "strata/layers/rotary.h"
#include "strata/model/layer_specs.h"
#include "strata/model/loss.h"
#include "test_util.h"

namespace strata {
namespace {

std::shared_ptr<TransformerConfig> config_with(bool fp32_residual, bool hyper_connections) {
  auto config = testing::small_config();
  config->hybrid_layer_pattern = "*-*-";
  config->num_layers = 4;
  config->enable_mhc_connections = hyper_connections;
  config->fp32_residual_connection = fp32_residual;
  return config;
}

// The block's output before the final norm: the residual stream itself (collapsed by the mHC head).
at::Tensor residual_out(std::shared_ptr<const TransformerConfig> config, at::Device device, bool autocast) {
  auto sub = decoder_spec(default_layer_registry(FusedBackend{}, *config), *config);
  sub.final_layernorm.reset();
  at::manual_seed(3);
  TransformerBlock block(config, sub, {});
  block.to(device);
  RotaryEmbedding rope(config->rotary_dim(), config->rotary_base);
  auto [cos, sin] = rope.tables(6, 0, device);
  ForwardContext ctx{.rotary_cos = cos, .rotary_sin = sin};
  auto hidden = at::randn({2, 6, config->hidden_size}, at::TensorOptions().device(device));
  std::optional<compat::CudaAutocast> scope;
  if (autocast) scope.emplace(at::kBFloat16);
  return block.forward(hidden, ctx);
}

TEST(ResidualDtype, FollowsTheFlagUnderCudaAutocast) {
  const auto device = testing::test_device();
  const bool autocast = device.is_cuda();  // CUDA autocast has nothing to act on elsewhere
  for (bool hyper_connections : {false, true}) {
    for (bool fp32_residual : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "mHC " << hyper_connections << ", fp32_residual_connection " << fp32_residual);
      auto out = residual_out(config_with(fp32_residual, hyper_connections), device, autocast);
      EXPECT_EQ(out.scalar_type(), autocast && !fp32_residual ? at::kBFloat16 : at::kFloat);
    }
  }
}

TEST(ResidualDtype, FlagChangesNothingWithoutAutocast) {
  const auto device = testing::test_device();
  for (bool hyper_connections : {false, true}) {
    SCOPED_TRACE(hyper_connections ? "mHC" : "plain residual");
    auto wide = residual_out(config_with(true, hyper_connections), device, false);
    auto narrow = residual_out(config_with(false, hyper_connections), device, false);
    EXPECT_TRUE(at::equal(wide, narrow));
  }
}

}  // namespace
}  // namespace strata
