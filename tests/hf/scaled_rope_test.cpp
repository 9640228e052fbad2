// Scaled RoPE imported from HF checkpoints against what HF transformers 5.17 computed
// (tests/fixtures/hf_scaled_rope): YaRN, linear and Llama 3 on Qwen3, YaRN on Qwen3-Next (partial
// rotary) and on DeepSeek-V3.2 (MLA softmax scale and the indexer's RoPE); the RoPE types strata
// refuses.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <ostream>
#include <string>

#include "strata/core/error.h"
#include "strata/hf/deepseek_v32.h"
#include "strata/hf/hf_check.h"
#include "strata/hf/qwen3.h"
#include "strata/hf/qwen3_next.h"
#include "strata/io/safetensors.h"
#include "test_util.h"

namespace strata::hf {
namespace {

using Json = nlohmann::json;

std::string scaled_rope_fixture(const std::string& name) { return cat(STRATA_SCALED_ROPE_FIXTURES_DIR, "/", name); }

Json fixture_config(const std::string& name) {
  std::ifstream in(scaled_rope_fixture(name) + "/model/config.json");
  return Json::parse(in);
}

template <class Config>
Config parse(const Json& json) {
  return std::get<Config>(io::parse_hf_config(json, "config.json"));
}

struct ScaledRopeFixture {
  const char* name;
  const char* model_type;
};

// Names the fixture in test listings and failures, instead of the struct's bytes.
void PrintTo(const ScaledRopeFixture& fixture, std::ostream* out) { *out << fixture.name; }

class HfScaledRope : public ::testing::TestWithParam<ScaledRopeFixture> {};

TEST_P(HfScaledRope, MatchesLogitsLossAndEveryGradient) {
  const auto dir = scaled_rope_fixture(GetParam().name);
  auto result = hf_check(dir, testing::test_device());
  EXPECT_EQ(result.model_type, GetParam().model_type);
  EXPECT_LE(result.logits_rel, 1e-4);
  EXPECT_LE(result.loss_abs, 1e-5);
  ASSERT_FALSE(result.grad_rel.empty());
  EXPECT_LE(result.grad_rel_max, 1e-3) << result.grad_rel.front().first;
  auto reference = io::SafetensorsFile::open(dir + "/reference.safetensors");
  size_t reference_grads = 0;
  for (const auto& name : reference.names()) reference_grads += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(result.grad_rel.size(), reference_grads);  // every gradient HF has is compared
  EXPECT_TRUE(result.pass) << summary_line(result);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfScaledRope,
                         ::testing::Values(ScaledRopeFixture{"qwen3_dense_yarn", "qwen3"},
                                           ScaledRopeFixture{"qwen3_dense_linear", "qwen3"},
                                           ScaledRopeFixture{"qwen3_dense_llama3", "qwen3"},
                                           ScaledRopeFixture{"qwen3_next_yarn", "qwen3_next"},
                                           ScaledRopeFixture{"deepseek_v32_yarn", "deepseek_v32"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(HfScaledRopeConfig, QwenYarnTakesHfDefaultsForWhatTheFileLeavesOut) {
  const auto c = qwen3_transformer_config(parse<io::Qwen3Config>(fixture_config("qwen3_dense_yarn")));
  const auto& s = c.rotary_scaling;
  EXPECT_EQ(s.kind, RotaryScalingKind::Yarn);
  EXPECT_EQ(s.factor, 4.0);
  EXPECT_EQ(s.original_max_position_embeddings, 4096);
  EXPECT_EQ(s.beta_fast, 32.0);
  EXPECT_EQ(s.beta_slow, 1.0);
  EXPECT_TRUE(s.truncate);
  EXPECT_EQ(s.mscale, 0.0);
  EXPECT_EQ(s.mscale_all_dim, 0.0);
  EXPECT_FALSE(s.attention_factor.has_value());
}

TEST(HfScaledRopeConfig, LinearAndLlama3MapFieldByField) {
  const auto linear = qwen3_transformer_config(parse<io::Qwen3Config>(fixture_config("qwen3_dense_linear")));
  EXPECT_EQ(linear.rotary_scaling.kind, RotaryScalingKind::Linear);
  EXPECT_EQ(linear.rotary_scaling.factor, 2.0);
  const auto llama3 = qwen3_transformer_config(parse<io::Qwen3Config>(fixture_config("qwen3_dense_llama3")));
  const auto& s = llama3.rotary_scaling;
  EXPECT_EQ(s.kind, RotaryScalingKind::Llama3);
  EXPECT_EQ(s.factor, 8.0);
  EXPECT_EQ(s.low_freq_factor, 1.0);
  EXPECT_EQ(s.high_freq_factor, 4.0);
  EXPECT_EQ(s.original_max_position_embeddings, 8192);
}

TEST(HfScaledRopeConfig, QwenNextRotatesTheNestedFractionWithYarn) {
  const auto c = qwen3_next_transformer_config(parse<io::Qwen3NextConfig>(fixture_config("qwen3_next_yarn")));
  EXPECT_EQ(c.rotary_percent, 0.5);  // rope_parameters' 0.5, not the top-level 0.25
  EXPECT_EQ(c.rotary_scaling.kind, RotaryScalingKind::Yarn);
  EXPECT_EQ(c.rotary_scaling.factor, 4.0);
}

TEST(HfScaledRopeConfig, DeepseekKeepsBothMscales) {
  const auto c = deepseek_v32_transformer_config(parse<io::DeepseekV32Config>(fixture_config("deepseek_v32_yarn")));
  const auto& s = c.rotary_scaling;
  EXPECT_EQ(s.kind, RotaryScalingKind::Yarn);
  EXPECT_EQ(s.factor, 40.0);
  EXPECT_EQ(s.mscale, 1.0);
  EXPECT_EQ(s.mscale_all_dim, 0.8);
}

// Files from before transformers 5 give the same RoPE as a top-level rope_scaling with "type".
TEST(HfScaledRopeConfig, LegacyRopeScalingGivesTheSameScaling) {
  auto json = fixture_config("qwen3_dense_yarn");
  json.erase("rope_parameters");
  json["rope_theta"] = 10000.0;
  json["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 4096}};
  const auto legacy = qwen3_transformer_config(parse<io::Qwen3Config>(json)).rotary_scaling;
  EXPECT_EQ(legacy.kind, RotaryScalingKind::Yarn);
  EXPECT_EQ(legacy.factor, 4.0);
  EXPECT_EQ(legacy.original_max_position_embeddings, 4096);
  EXPECT_EQ(legacy.beta_fast, 32.0);
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(HfScaledRopeConfig, UnimplementedRopeTypesAreRefusedByName) {
  for (const char* type : {"dynamic", "longrope"}) {
    auto qwen3 = fixture_config("qwen3_dense_yarn");
    qwen3["rope_parameters"]["rope_type"] = type;
    EXPECT_CONTAINS(testing::error_of([&] { qwen3_transformer_config(parse<io::Qwen3Config>(qwen3)); }),
                    cat("qwen3 config: rope_type \"", type, "\" (rope_parameters) is not supported"));
    auto next = fixture_config("qwen3_next_yarn");
    next["rope_parameters"]["rope_type"] = type;
    EXPECT_CONTAINS(testing::error_of([&] { qwen3_next_transformer_config(parse<io::Qwen3NextConfig>(next)); }),
                    cat("qwen3_next config: rope_type \"", type, "\" (rope_parameters) is not supported"));
    auto deepseek = fixture_config("deepseek_v32_yarn");
    deepseek["rope_parameters"]["rope_type"] = type;
    EXPECT_CONTAINS(testing::error_of([&] { deepseek_v32_transformer_config(parse<io::DeepseekV32Config>(deepseek)); }),
                    cat("deepseek_v32 config: rope_type \"", type, "\" (rope_parameters) is not supported"));
  }
  auto legacy = fixture_config("qwen3_dense_yarn");
  legacy.erase("rope_parameters");
  legacy["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_CONTAINS(testing::error_of([&] { qwen3_transformer_config(parse<io::Qwen3Config>(legacy)); }),
                  "qwen3 config: rope_type \"dynamic\" (rope_scaling) is not supported");
}

TEST(HfScaledRopeConfig, BadScalingValuesNameTheField) {
  auto json = fixture_config("qwen3_dense_yarn");
  json["rope_parameters"]["factor"] = -4.0;
  EXPECT_EQ(testing::error_of([&] { qwen3_transformer_config(parse<io::Qwen3Config>(json)); }),
            "qwen3 config: rope_parameters.factor = -4 (yarn): expected a positive, finite value");
  // HF's DeepSeek scales the softmax by mscale_all_dim under any scaled type; strata only under YaRN.
  auto deepseek = fixture_config("deepseek_v32_yarn");
  deepseek["rope_parameters"]["rope_type"] = "linear";
  EXPECT_CONTAINS(testing::error_of([&] { deepseek_v32_transformer_config(parse<io::DeepseekV32Config>(deepseek)); }),
                  "deepseek_v32 config: rope_parameters.mscale_all_dim = 0.8 with rope_type \"linear\" is not "
                  "supported");
}

}  // namespace
}  // namespace strata::hf
