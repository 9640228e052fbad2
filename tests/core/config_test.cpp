#include "strata/core/config.h"

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "strata/core/error.h"
#include "strata/model/layer_allocation.h"
#include "test_util.h"

namespace strata {
namespace {

TransformerConfig small_config() {
  TransformerConfig c;
  use_llama_style(c);
  c.num_layers = 2;
  c.hidden_size = 64;
  c.ffn_hidden_size = 128;
  c.num_attention_heads = 4;
  c.num_query_groups = 2;
  c.kv_channels = 16;
  c.vocab_size = 256;
  return c;
}

TEST(TransformerConfig, ValidConfigPasses) { EXPECT_NO_THROW(validate(small_config())); }

TEST(TransformerConfig, ErrorNamesFieldAndValue) {
  auto c = small_config();
  c.num_query_groups = 3;
  try {
    validate(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_query_groups = 3"), std::string::npos) << e.what();
  }
}

// 2 * hidden_size overflowed (undefined behaviour) when Mamba derived its heads from it; found by
// the model_config fuzzer.
TEST(TransformerConfig, MambaHeadsFromAHugeHiddenSizeAreRefused) {
  auto c = small_config();
  c.hybrid_layer_pattern = "M-";
  c.hidden_size = std::numeric_limits<int64_t>::max();
  try {
    validate(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TransformerConfig.hidden_size = 9223372036854775807: too large for "
                                         "mamba_num_heads = 0 to derive the heads"),
              std::string::npos)
        << e.what();
  }
}

TEST(TransformerConfig, RotaryDimIsEvenFraction) {
  auto c = small_config();
  c.rotary_percent = 0.25;
  EXPECT_EQ(c.rotary_dim(), 4);
}

TEST(TransformerConfig, RotaryScalingIsValidatedForItsKind) {
  auto c = small_config();
  c.rotary_scaling.original_max_position_embeddings = -1;  // unused without scaling
  EXPECT_NO_THROW(validate(c));
  c.rotary_scaling.kind = RotaryScalingKind::Llama3;
  c.rotary_scaling.factor = 8.0;
  try {
    validate(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "TransformerConfig.rotary_scaling.original_max_position_embeddings = -1 "
                                     "(llama3): expected the positive pre-training context length");
  }
  c.rotary_scaling.kind = RotaryScalingKind::Linear;  // linear places no bands, so needs no context
  EXPECT_NO_THROW(validate(c));
}

// Each case sets one field of a config that validates, and the error must name it and its value.
struct BadField {
  std::string names;  // "TransformerConfig.<field> = <value>"
  std::function<void(TransformerConfig&)> set;
};

void expect_each_refused(const TransformerConfig& valid, const std::vector<BadField>& cases) {
  ASSERT_NO_THROW(validate(valid));
  for (const auto& bad : cases) {
    auto c = valid;
    bad.set(c);
    const auto message = testing::error_of([&] { validate(c); });
    EXPECT_NE(message.find(bad.names), std::string::npos) << "expected '" << bad.names << "' in '" << message << "'";
  }
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(TransformerConfig, NonFiniteAndOutOfRangeRealsAreRefused) {
  expect_each_refused(small_config(), {
      {"rotary_base = nan", [](auto& c) { c.rotary_base = kNaN; }},
      {"rotary_base = inf", [](auto& c) { c.rotary_base = kInf; }},
      {"rotary_base = -10000", [](auto& c) { c.rotary_base = -10000.0; }},
      {"rotary_base = 0", [](auto& c) { c.rotary_base = 0.0; }},
      {"rotary_percent = nan", [](auto& c) { c.rotary_percent = kNaN; }},
      {"rotary_percent = inf", [](auto& c) { c.rotary_percent = kInf; }},
      {"rotary_percent = -0.5", [](auto& c) { c.rotary_percent = -0.5; }},
      {"rotary_percent = 1.5", [](auto& c) { c.rotary_percent = 1.5; }},
      {"layernorm_epsilon = nan", [](auto& c) { c.layernorm_epsilon = kNaN; }},
      {"layernorm_epsilon = inf", [](auto& c) { c.layernorm_epsilon = kInf; }},
      {"layernorm_epsilon = -1e-05", [](auto& c) { c.layernorm_epsilon = -1e-5; }},
      {"layernorm_epsilon = 0", [](auto& c) { c.layernorm_epsilon = 0.0; }},
      {"init_method_std = nan", [](auto& c) { c.init_method_std = kNaN; }},
      {"init_method_std = inf", [](auto& c) { c.init_method_std = kInf; }},
      {"init_method_std = -1", [](auto& c) { c.init_method_std = -1.0; }},
      {"hidden_dropout = nan", [](auto& c) { c.hidden_dropout = kNaN; }},
      {"hidden_dropout = inf", [](auto& c) { c.hidden_dropout = kInf; }},
      {"hidden_dropout = -0.1", [](auto& c) { c.hidden_dropout = -0.1; }},
      {"hidden_dropout = 1", [](auto& c) { c.hidden_dropout = 1.0; }},
      {"hidden_dropout = 1.5", [](auto& c) { c.hidden_dropout = 1.5; }},
      {"attention_dropout = nan", [](auto& c) { c.attention_dropout = kNaN; }},
      {"attention_dropout = -inf", [](auto& c) { c.attention_dropout = -kInf; }},
      {"attention_dropout = -0.1", [](auto& c) { c.attention_dropout = -0.1; }},
      {"attention_dropout = 1", [](auto& c) { c.attention_dropout = 1.0; }},
  });
}

TEST(TransformerConfig, ZeroIsAllowedWhereItMeansOff) {
  auto c = small_config();
  c.init_method_std = c.hidden_dropout = c.attention_dropout = c.rotary_percent = 0.0;
  EXPECT_NO_THROW(validate(c));
}

TEST(TransformerConfig, HyperConnectionFieldsAreCheckedWhenOn) {
  auto c = small_config();
  c.mhc_eps = kNaN;  // unused without mHC
  EXPECT_NO_THROW(validate(c));
  c = small_config();
  c.enable_mhc_connections = true;
  expect_each_refused(c, {
      {"mhc_num_residual_streams = 0", [](auto& c) { c.mhc_num_residual_streams = 0; }},
      {"mhc_sinkhorn_iterations = -1", [](auto& c) { c.mhc_sinkhorn_iterations = -1; }},
      {"mhc_eps = nan", [](auto& c) { c.mhc_eps = kNaN; }},
      {"mhc_eps = inf", [](auto& c) { c.mhc_eps = kInf; }},
      {"mhc_eps = -1e-06", [](auto& c) { c.mhc_eps = -1e-6; }},
      {"mhc_init_gating_factor = nan", [](auto& c) { c.mhc_init_gating_factor = kNaN; }},
      {"mhc_init_gating_factor = inf", [](auto& c) { c.mhc_init_gating_factor = kInf; }},
      {"mhc_init_gating_factor = -inf", [](auto& c) { c.mhc_init_gating_factor = -kInf; }},
      {"mhc_recompute_layer_num = -1", [](auto& c) { c.mhc_recompute_layer_num = -1; }},
  });
}

TEST(TransformerConfig, MixtureOfExpertsFieldsAreChecked) {
  auto c = small_config();
  c.hybrid_layer_pattern = "*E";
  c.num_moe_experts = 4;
  c.moe_ffn_hidden_size = 32;
  expect_each_refused(c, {
      {"num_moe_experts = 0", [](auto& c) { c.num_moe_experts = 0; }},
      {"moe_ffn_hidden_size = -32", [](auto& c) { c.moe_ffn_hidden_size = -32; }},
      {"moe_router_topk = 0", [](auto& c) { c.moe_router_topk = 0; }},
      {"moe_router_topk = 5: expected 1 to num_moe_experts = 4", [](auto& c) { c.moe_router_topk = 5; }},
      {"moe_shared_expert_intermediate_size = -1", [](auto& c) { c.moe_shared_expert_intermediate_size = -1; }},
      {"moe_router_score_function = 'relu'", [](auto& c) { c.moe_router_score_function = "relu"; }},
      {"moe_shared_expert_gate = true: there is no shared expert", [](auto& c) { c.moe_shared_expert_gate = true; }},
      {"moe_router_topk_scaling_factor = nan", [](auto& c) { c.moe_router_topk_scaling_factor = kNaN; }},
      {"moe_router_topk_scaling_factor = inf", [](auto& c) { c.moe_router_topk_scaling_factor = kInf; }},
      {"moe_router_topk_scaling_factor = -1", [](auto& c) { c.moe_router_topk_scaling_factor = -1.0; }},
      {"moe_router_topk_scaling_factor = 0", [](auto& c) { c.moe_router_topk_scaling_factor = 0.0; }},
      {"moe_aux_loss_coeff = nan", [](auto& c) { c.moe_aux_loss_coeff = kNaN; }},
      {"moe_aux_loss_coeff = inf", [](auto& c) { c.moe_aux_loss_coeff = kInf; }},
      {"moe_aux_loss_coeff = -0.01", [](auto& c) { c.moe_aux_loss_coeff = -0.01; }},
  });
}

TEST(TransformerConfig, GatedDeltaNetFieldsAreChecked) {
  auto c = small_config();
  c.hybrid_layer_pattern = "G-";
  c.linear_num_key_heads = 2;
  c.linear_num_value_heads = 4;
  c.linear_key_head_dim = 16;
  c.linear_value_head_dim = 16;
  expect_each_refused(c, {
      {"linear_num_key_heads = 0", [](auto& c) { c.linear_num_key_heads = 0; }},
      {"linear_num_value_heads = -4", [](auto& c) { c.linear_num_value_heads = -4; }},
      {"linear_key_head_dim = 0", [](auto& c) { c.linear_key_head_dim = 0; }},
      {"linear_value_head_dim = 0", [](auto& c) { c.linear_value_head_dim = 0; }},
      {"linear_conv_kernel_dim = 0", [](auto& c) { c.linear_conv_kernel_dim = 0; }},
      {"linear_chunk_size = -64", [](auto& c) { c.linear_chunk_size = -64; }},
      {"linear_num_value_heads = 3: must be a multiple of linear_num_key_heads = 2",
       [](auto& c) { c.linear_num_value_heads = 3; }},
  });
}

TEST(TransformerConfig, MambaTimeStepsAreChecked) {
  auto c = small_config();
  c.hybrid_layer_pattern = "M-";
  c.mamba_head_dim = 16;
  c.mamba_num_groups = 2;
  expect_each_refused(c, {
      {"mamba_time_step_min = nan", [](auto& c) { c.mamba_time_step_min = kNaN; }},
      {"mamba_time_step_min = inf", [](auto& c) { c.mamba_time_step_min = kInf; }},
      {"mamba_time_step_min = -0.001", [](auto& c) { c.mamba_time_step_min = -0.001; }},
      {"mamba_time_step_min = 0", [](auto& c) { c.mamba_time_step_min = 0.0; }},
      {"mamba_time_step_max = nan", [](auto& c) { c.mamba_time_step_max = kNaN; }},
      {"mamba_time_step_max = inf", [](auto& c) { c.mamba_time_step_max = kInf; }},
      {"mamba_time_step_max = 0.0001", [](auto& c) { c.mamba_time_step_max = 1e-4; }},  // below min
      {"mamba_time_step_floor = nan", [](auto& c) { c.mamba_time_step_floor = kNaN; }},
      {"mamba_time_step_floor = inf", [](auto& c) { c.mamba_time_step_floor = kInf; }},
      {"mamba_time_step_floor = -1", [](auto& c) { c.mamba_time_step_floor = -1.0; }},
      {"mamba_time_step_limit_min = nan", [](auto& c) { c.mamba_time_step_limit_min = kNaN; }},
      {"mamba_time_step_limit_min = inf", [](auto& c) { c.mamba_time_step_limit_min = kInf; }},
      {"mamba_time_step_limit_min = -1", [](auto& c) { c.mamba_time_step_limit_min = -1.0; }},
      {"mamba_time_step_limit_max = nan", [](auto& c) { c.mamba_time_step_limit_max = kNaN; }},
      {"mamba_time_step_limit_max = 0.5", [](auto& c) {  // below limit_min
         c.mamba_time_step_limit_min = 1.0;
         c.mamba_time_step_limit_max = 0.5;
       }},
  });
}

TEST(TransformerConfig, LayerCountAboveTheLimitIsRefused) {
  auto c = small_config();
  c.num_layers = kMaxLayers;
  EXPECT_NO_THROW(validate(c));
  c.num_layers = kMaxLayers + 1;
  EXPECT_EQ(testing::error_of([&] { validate(c); }),
            "TransformerConfig.num_layers = 10001: more than strata's limit of 10000 layers");
}

// A pattern is refused by its length before it is parsed: a hostile one may be megabytes long.
TEST(TransformerConfig, PatternLongerThanTheLimitIsRefused) {
  const std::string pattern(8 * kMaxLayers + 1, '*');
  EXPECT_EQ(testing::error_of([&] { parse_layer_pattern(pattern); }),
            "layer pattern of 80001 characters: longer than strata's limit of 80000 (its models have at most 10000 "
            "layers)");
  auto c = small_config();
  c.hybrid_layer_pattern = pattern;
  EXPECT_NE(testing::error_of([&] { resolve_layer_pattern(c); }).find("layer pattern of 80001 characters"),
            std::string::npos);
}

TEST(TransformerConfig, UnknownActivationListsValidValues) {
  try {
    parse_activation("swish", "--activation");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--activation: unknown activation 'swish'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("squared_relu"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata
