#include "strata/core/config_json.h"

#include <gtest/gtest.h>

#include <limits>

#include "strata/core/error.h"
#include "test_util.h"

namespace strata {
namespace {

TEST(ConfigJson, RoundTripsEveryField) {
  TransformerConfig c;
  c.num_layers = 3;
  c.hybrid_layer_pattern = "[*-]G";
  c.moe_layer_freq.explicit_list = {1, 0, 1};
  c.linear_attention_freq.every = 4;
  c.normalization = Normalization::LayerNorm;
  c.activation_func = Activation::SquaredReLU;
  c.rotary_percent = 0.5;
  c.fp32_residual_connection = false;
  auto back = config_from_json(to_json(c), "test");
  EXPECT_EQ(to_json(back), to_json(c));
  EXPECT_EQ(back.moe_layer_freq.explicit_list, (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(back.linear_attention_freq.every, 4);
  EXPECT_FALSE(back.fp32_residual_connection);
}

TEST(ConfigJson, InfiniteMambaTimeStepLimitRoundTripsThroughTextAsNull) {
  TransformerConfig c;
  c.mamba_num_heads = 8;
  c.mamba_time_step_limit_min = 0.01;
  auto text = to_json(c).dump();
  EXPECT_TRUE(to_json(c)["mamba_time_step_limit_max"].is_null()) << text;
  auto back = config_from_json(nlohmann::json::parse(text), "test");
  EXPECT_EQ(back.mamba_time_step_limit_max, std::numeric_limits<double>::infinity());
  EXPECT_EQ(back.mamba_time_step_limit_min, 0.01);
  EXPECT_EQ(back.mamba_num_heads, 8);
  EXPECT_EQ(config_from_json({{"mamba_time_step_limit_max", 5.0}}, "test").mamba_time_step_limit_max, 5.0);
}

TEST(ConfigJson, UnknownFieldsAreErrorsListingTheValidOnes) {
  try {
    config_from_json({{"num_layer", 2}}, "model.json");
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.json: unknown config field 'num_layer'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("num_layers"), std::string::npos) << msg;
  }
}

TEST(ConfigJson, WrongTypesNameTheField) {
  try {
    config_from_json({{"hidden_size", "64"}}, "model.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.json: field 'hidden_size' is \"64\", expected an integer"),
              std::string::npos)
        << e.what();
  }
}

// nlohmann's get<int64_t> turns 2^64 - 1 into -1 without a word; found by the model_config fuzzer.
TEST(ConfigJson, IntegersBeyondInt64AreRefusedNotWrapped) {
  EXPECT_EQ(testing::error_of([] { config_from_json({{"moe_router_topk", 18446744073709551615ull}}, "model.json"); }),
            "model.json: field 'moe_router_topk' is 18446744073709551615, expected an integer in "
            "[-9223372036854775808, 9223372036854775807]");
  EXPECT_NE(testing::error_of([] { config_from_json({{"moe_layer_freq", 9223372036854775808ull}}, "model.json"); })
                .find("model.json: field 'moe_layer_freq' is 9223372036854775808, expected an integer in"),
            std::string::npos);
  EXPECT_EQ(config_from_json({{"num_layers", 9223372036854775807ull}}, "model.json").num_layers,
            std::numeric_limits<int64_t>::max());
}

TEST(ConfigJson, RotaryScalingIsNullOrAnObjectWithTheFieldsItsTypeUses) {
  TransformerConfig c;
  EXPECT_TRUE(to_json(c)["rotary_scaling"].is_null());
  c.rotary_scaling.kind = RotaryScalingKind::Yarn;
  c.rotary_scaling.factor = 40.0;
  c.rotary_scaling.original_max_position_embeddings = 4096;
  c.rotary_scaling.mscale_all_dim = 0.8;
  c.rotary_scaling.truncate = false;
  auto json = to_json(c)["rotary_scaling"];
  EXPECT_EQ(json["type"], "yarn");
  EXPECT_TRUE(json["attention_factor"].is_null());  // derived
  EXPECT_FALSE(json.contains("low_freq_factor"));   // llama3's
  auto back = config_from_json(nlohmann::json::parse(to_json(c).dump()), "test");
  EXPECT_EQ(to_json(back), to_json(c));
  EXPECT_FALSE(back.rotary_scaling.attention_factor.has_value());
  c.rotary_scaling.attention_factor = 1.25;
  EXPECT_EQ(config_from_json(to_json(c), "test").rotary_scaling.attention_factor, 1.25);
  // Fields left out keep their defaults.
  const auto linear = config_from_json({{"rotary_scaling", {{"type", "linear"}, {"factor", 2}}}}, "test");
  EXPECT_EQ(linear.rotary_scaling.kind, RotaryScalingKind::Linear);
  EXPECT_EQ(linear.rotary_scaling.factor, 2.0);
}

TEST(ConfigJson, RotaryScalingErrorsNameTheKey) {
  auto error_of = [](const nlohmann::json& json) {
    try {
      config_from_json(json, "model.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << json.dump() << " was accepted";
    return std::string();
  };
  EXPECT_EQ(error_of({{"rotary_scaling", {{"type", "linear"}, {"beta_fast", 32}}}}),
            "model.json: field 'rotary_scaling': unknown key 'beta_fast' for type linear (valid keys: type, factor)");
  EXPECT_EQ(error_of({{"rotary_scaling", {{"type", "ntk"}}}}),
            "model.json: field 'rotary_scaling', key 'type': unknown rotary scaling 'ntk' (expected none, linear, "
            "yarn or llama3)");
  EXPECT_EQ(error_of({{"rotary_scaling", {{"type", "yarn"}, {"factor", "4"}}}}),
            "model.json: field 'rotary_scaling', key 'factor' is \"4\", expected a number");
  EXPECT_EQ(error_of({{"rotary_scaling", "yarn"}}),
            "model.json: field 'rotary_scaling' is \"yarn\", expected null or an object with a \"type\" (linear, yarn "
            "or llama3)");
}

}  // namespace
}  // namespace strata
