#include "strata/io/hf_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "strata/core/error.h"
#include "strata/io/json_fields.h"
#include "test_util.h"

namespace strata::io {
namespace {

using Json = nlohmann::json;
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string config_path(const std::string& arch) { return cat(STRATA_FIXTURES_DIR, "/", arch, "/model/config.json"); }

Json fixture_json(const std::string& arch) {
  std::ifstream in(config_path(arch));
  return Json::parse(in);
}

std::string parse_error(const Json& json) {
  return testing::error_of([&] { parse_hf_config(json, "cfg.json"); });
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

// A file written under a fresh temporary name (test binaries may run in parallel), removed at the
// end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& text)
      : path_(std::filesystem::temp_directory_path() / cat("strata_hf_config_", ::getpid(), "_", next_id_++, ".json")) {
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  static inline int next_id_ = 0;
  std::filesystem::path path_;
};

// ---- JsonFields -------------------------------------------------------------------------------

TEST(JsonFields, ReadsEverySupportedType) {
  const Json j = {{"i", 64},        {"d", 1e-6},        {"b", true},       {"s", "silu"},  {"li", {1, 2}},
                  {"ld", {0.5, 2}}, {"ls", {"a", "b"}}, {"m", {{"x", 4}}}, {"whole", 64.0}};
  const JsonFields f(j, "f.json", "test");
  EXPECT_EQ(f.required<int64_t>("i"), 64);
  EXPECT_EQ(f.required<double>("d"), 1e-6);
  EXPECT_EQ(f.required<double>("i"), 64.0);  // integers are numbers too
  EXPECT_TRUE(f.required<bool>("b"));
  EXPECT_EQ(f.required<std::string>("s"), "silu");
  EXPECT_EQ(f.required<std::vector<int64_t>>("li"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(f.required<std::vector<double>>("ld"), (std::vector<double>{0.5, 2.0}));
  EXPECT_EQ(f.required<std::vector<std::string>>("ls"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ((f.required<std::map<std::string, int64_t>>("m")), (std::map<std::string, int64_t>{{"x", 4}}));
  EXPECT_EQ(f.required<int64_t>("whole"), 64);
}

TEST(JsonFields, OptionalFieldsFallBackWhenAbsentOrNull) {
  const Json j = {{"pad_token_id", nullptr}, {"eps", 1e-5}};
  const JsonFields f(j, "f.json", "test");
  EXPECT_FALSE(f.has("pad_token_id"));
  EXPECT_EQ(f.optional<int64_t>("pad_token_id", 7), 7);
  EXPECT_EQ(f.optional<double>("missing", 1e-6), 1e-6);
  EXPECT_EQ(f.optional<double>("eps", 1e-6), 1e-5);
  EXPECT_EQ(f.optional_value<int64_t>("pad_token_id"), std::nullopt);
  EXPECT_EQ(f.optional_value<double>("eps"), 1e-5);
  EXPECT_EQ(testing::error_of([&] { f.required<int64_t>("pad_token_id"); }),
            "f.json: required field 'pad_token_id' is null (test)");
}

TEST(JsonFields, WrongTypeNamesFileFieldContextAndExpectation) {
  const Json j = {{"hidden_size", "64"}};
  const JsonFields f(j, "cfg.json", "model_type qwen3");
  EXPECT_EQ(testing::error_of([&] { f.required<int64_t>("hidden_size"); }),
            "cfg.json: field 'hidden_size' (model_type qwen3) is a string (\"64\"), expected an integer");
}

TEST(JsonFields, MissingRequiredFieldIsNamed) {
  const JsonFields f(Json::object(), "cfg.json", "model_type qwen3");
  EXPECT_EQ(testing::error_of([&] { f.required<int64_t>("hidden_size"); }),
            "cfg.json: required field 'hidden_size' is missing (model_type qwen3)");
}

TEST(JsonFields, IntegersMustBeIntegral) {
  const Json j = {{"a", 64.5}, {"b", 1e30}, {"c", 18446744073709551615ull}, {"d", true}};
  const JsonFields f(j, "cfg.json", "test");
  EXPECT_CONTAINS(testing::error_of([&] { f.required<int64_t>("a"); }),
                  "field 'a' (test) is a number (64.5), expected an integer");
  EXPECT_CONTAINS(testing::error_of([&] { f.required<int64_t>("b"); }), "expected an integer");
  EXPECT_CONTAINS(testing::error_of([&] { f.required<int64_t>("c"); }), "expected an integer below 2^63");
  EXPECT_CONTAINS(testing::error_of([&] { f.required<int64_t>("d"); }), "is a boolean (true), expected an integer");
}

TEST(JsonFields, NestedObjectsAndListEntriesAreNamedByPath) {
  const Json j = {{"rope_parameters", {{"rope_theta", "big"}}}, {"layer_types", {"a", 3}}, {"flat", 1}};
  const JsonFields f(j, "cfg.json", "model_type qwen3");
  const auto rope = f.object("rope_parameters");
  EXPECT_EQ(testing::error_of([&] { rope.required<double>("rope_theta"); }),
            "cfg.json: field 'rope_parameters.rope_theta' (model_type qwen3) is a string (\"big\"), expected a number");
  EXPECT_EQ(testing::error_of([&] { rope.required<std::string>("rope_type"); }),
            "cfg.json: required field 'rope_parameters.rope_type' is missing (model_type qwen3)");
  EXPECT_CONTAINS(testing::error_of([&] { f.required<std::vector<std::string>>("layer_types"); }),
                  "field 'layer_types[1]' (model_type qwen3) is an integer (3), expected a string");
  EXPECT_CONTAINS(testing::error_of([&] { f.object("flat"); }),
                  "field 'flat' (model_type qwen3) is an integer (1), expected an object");
  EXPECT_CONTAINS(testing::error_of([&] { f.object("absent"); }), "required field 'absent' is missing");
}

TEST(JsonFields, ReadsTheHfEncodingOfNonFiniteFloats) {
  const Json j = Json::parse(R"({"limit": [0.0, {"__float__": "Infinity"}], "low": {"__float__": "-Infinity"},
                                 "nan": {"__float__": "NaN"}, "bad": {"__float__": "Huge"}})");
  const JsonFields f(j, "cfg.json", "test");
  EXPECT_EQ(f.required<std::vector<double>>("limit"), (std::vector<double>{0.0, kInf}));
  EXPECT_EQ(f.required<double>("low"), -kInf);
  EXPECT_TRUE(std::isnan(f.required<double>("nan")));
  EXPECT_CONTAINS(testing::error_of([&] { f.required<double>("bad"); }), "field 'bad' (test) is an object");
  EXPECT_CONTAINS(testing::error_of([&] { f.required<int64_t>("low"); }), "expected an integer");
}

TEST(JsonFields, ParsesPythonsBareNonFiniteLiteralsOutsideStrings) {
  const auto j = parse_json_allowing_python_floats(
      R"({"limit": [0.0, Infinity, -Infinity, NaN], "text": "NaN \" Infinity", "n": -1})");
  const JsonFields f(j, "cfg.json", "test");
  const auto limit = f.required<std::vector<double>>("limit");
  ASSERT_EQ(limit.size(), 4u);
  EXPECT_EQ(limit[1], kInf);
  EXPECT_EQ(limit[2], -kInf);
  EXPECT_TRUE(std::isnan(limit[3]));
  EXPECT_EQ(f.required<std::string>("text"), "NaN \" Infinity");
  EXPECT_EQ(f.required<int64_t>("n"), -1);
  EXPECT_THROW(parse_json_allowing_python_floats("{\"a\": Inf}"), Json::parse_error);
}

// ---- the five fixtures ------------------------------------------------------------------------

TEST(HfConfig, Qwen3DenseFixture) {
  const auto config = read_hf_config(config_path("qwen3_dense"));
  EXPECT_EQ(model_type(config), "qwen3");
  const auto& c = std::get<Qwen3Config>(config);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope.rope_theta, 10000.0);
  EXPECT_EQ(c.rope.rope_type, "default");
  EXPECT_EQ(c.rope.partial_rotary_factor, 1.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.hidden_act, "silu");
}

TEST(HfConfig, Qwen3NextFixture) {
  const auto config = read_hf_config(config_path("qwen3_next"));
  EXPECT_EQ(model_type(config), "qwen3_next");
  const auto& c = std::get<Qwen3NextConfig>(config);
  EXPECT_EQ(c.base.hidden_size, 64);
  EXPECT_EQ(c.base.intermediate_size, 96);
  EXPECT_EQ(c.base.num_hidden_layers, 4);
  EXPECT_EQ(c.base.num_attention_heads, 4);
  EXPECT_EQ(c.base.num_key_value_heads, 2);
  EXPECT_EQ(c.base.head_dim, 16);
  EXPECT_EQ(c.base.rope.rope_theta, 10000.0);
  EXPECT_EQ(c.base.rope.partial_rotary_factor, 0.25);
  EXPECT_EQ(c.layer_types,
            (std::vector<std::string>{"linear_attention", "full_attention", "linear_attention", "full_attention"}));
  EXPECT_EQ(c.linear_conv_kernel_dim, 4);
  EXPECT_EQ(c.linear_key_head_dim, 16);
  EXPECT_EQ(c.linear_value_head_dim, 16);
  EXPECT_EQ(c.linear_num_key_heads, 2);
  EXPECT_EQ(c.linear_num_value_heads, 4);
  EXPECT_EQ(c.num_experts, 4);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 32);
  EXPECT_EQ(c.shared_expert_intermediate_size, 48);
  EXPECT_EQ(c.decoder_sparse_step, 1);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.mlp_only_layers, (std::vector<int64_t>{1}));
  EXPECT_EQ(c.router_aux_loss_coef, 0.001);
}

TEST(HfConfig, NemotronHFixture) {
  const auto config = read_hf_config(config_path("nemotron_h"));
  EXPECT_EQ(model_type(config), "nemotron_h");
  const auto& c = std::get<NemotronHConfig>(config);
  EXPECT_EQ(c.num_hidden_layers(), 6);
  EXPECT_EQ(c.layers_block_type,
            (std::vector<std::string>{"linear_attention", "mlp", "full_attention", "mlp", "linear_attention", "mlp"}));
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.layer_norm_epsilon, 1e-5);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.mamba_num_heads, 8);
  EXPECT_EQ(c.mamba_head_dim, 16);
  EXPECT_EQ(c.n_groups, 2);
  EXPECT_EQ(c.ssm_state_size, 16);
  EXPECT_EQ(c.conv_kernel, 4);
  EXPECT_EQ(c.chunk_size, 32);
  EXPECT_EQ(c.expand, 2);
  EXPECT_EQ(c.mamba_hidden_act, "silu");
  EXPECT_TRUE(c.use_conv_bias);
  EXPECT_FALSE(c.mamba_proj_bias);
  EXPECT_EQ(c.time_step_min, 0.001);
  EXPECT_EQ(c.time_step_max, 0.1);
  EXPECT_EQ(c.time_step_floor, 1e-4);
  EXPECT_EQ(c.time_step_limit.first, 0.0);
  EXPECT_EQ(c.time_step_limit.second, kInf);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.mlp_hidden_act, "relu2");
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.n_routed_experts, 8);
  EXPECT_EQ(c.moe_intermediate_size, 7688);
  EXPECT_EQ(c.moe_latent_size, std::nullopt);
  EXPECT_EQ(c.routed_scaling_factor, 1.0);
}

TEST(HfConfig, DeepseekV32Fixture) {
  const auto config = read_hf_config(config_path("deepseek_v32"));
  EXPECT_EQ(model_type(config), "deepseek_v32");
  const auto& c = std::get<DeepseekV32Config>(config);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.layer_types, (std::vector<std::string>(2, "deepseek_sparse_attention")));
  EXPECT_EQ(c.q_lora_rank, 32);
  EXPECT_EQ(c.kv_lora_rank, 32);
  EXPECT_EQ(c.qk_nope_head_dim, 16);
  EXPECT_EQ(c.qk_rope_head_dim, 8);
  EXPECT_EQ(c.v_head_dim, 16);
  EXPECT_EQ(c.index_n_heads, 2);
  EXPECT_EQ(c.index_head_dim, 16);
  EXPECT_EQ(c.index_topk, 16);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.n_routed_experts, 4);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 32);
  EXPECT_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.first_k_dense_replace, 1);
  EXPECT_EQ(c.mlp_layer_types, (std::vector<std::string>{"dense", "sparse"}));
  EXPECT_EQ(c.rope.rope_theta, 10000.0);
  EXPECT_EQ(c.rope.rope_type, "default");
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
}

TEST(HfConfig, DeepseekV4Fixture) {
  const auto config = read_hf_config(config_path("deepseek_v4"));
  EXPECT_EQ(model_type(config), "deepseek_v4");
  const auto& c = std::get<DeepseekV4Config>(config);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 3);
  EXPECT_EQ(c.hc_mult, 4);
  EXPECT_EQ(c.hc_sinkhorn_iters, 20);
  EXPECT_EQ(c.hc_eps, 1e-6);
  EXPECT_EQ(c.compress_rates.at("compressed_sparse_attention"), 4);
  EXPECT_EQ(c.compress_rates.at("heavily_compressed_attention"), 16);
  EXPECT_EQ(c.layer_types, (std::vector<std::string>{"sliding_attention", "compressed_sparse_attention",
                                                     "heavily_compressed_attention"}));
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.qk_rope_head_dim, 8);
  EXPECT_EQ(c.q_lora_rank, 32);
  EXPECT_EQ(c.o_groups, 2);
  EXPECT_EQ(c.o_lora_rank, 16);
  EXPECT_EQ(c.sliding_window, 16);
  EXPECT_EQ(c.main_rope.rope_theta, 10000.0);
  EXPECT_EQ(c.main_rope.partial_rotary_factor, 0.25);
  EXPECT_EQ(c.compress_rope.rope_theta, 160000.0);
  EXPECT_EQ(c.compress_rope.rope_type, "default");
  EXPECT_EQ(c.index_n_heads, 2);
  EXPECT_EQ(c.index_head_dim, 16);
  EXPECT_EQ(c.index_topk, 8);
  EXPECT_EQ(c.mlp_layer_types, (std::vector<std::string>(3, "moe")));
  EXPECT_EQ(c.n_routed_experts, 4);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 32);
  EXPECT_EQ(c.scoring_func, "sqrtsoftplus");
  EXPECT_EQ(c.routed_scaling_factor, 1.5);
  EXPECT_EQ(c.swiglu_limit, 10.0);
}

// ---- errors -----------------------------------------------------------------------------------

TEST(HfConfigErrors, UnknownModelTypeListsTheSupportedOnes) {
  auto j = fixture_json("qwen3_dense");
  j["model_type"] = "llama";
  const auto msg = parse_error(j);
  EXPECT_CONTAINS(msg, "cfg.json: model_type 'llama' is not supported");
  for (const char* type : {"qwen3", "qwen3_next", "nemotron_h", "deepseek_v32", "deepseek_v4"})
    EXPECT_CONTAINS(msg, type);
}

TEST(HfConfigErrors, MissingModelType) {
  auto j = fixture_json("qwen3_dense");
  j.erase("model_type");
  const auto msg = parse_error(j);
  EXPECT_CONTAINS(msg, "cfg.json: required field 'model_type' is missing");
  EXPECT_CONTAINS(msg, "deepseek_v4");
}

TEST(HfConfigErrors, MissingRequiredFieldIsNamed) {
  auto j = fixture_json("qwen3_dense");
  j.erase("hidden_size");
  EXPECT_EQ(parse_error(j), "cfg.json: required field 'hidden_size' is missing (model_type qwen3)");
  auto v4 = fixture_json("deepseek_v4");
  v4.erase("o_lora_rank");
  EXPECT_CONTAINS(parse_error(v4), "required field 'o_lora_rank' is missing (model_type deepseek_v4)");
}

TEST(HfConfigErrors, WrongTypeIsNamed) {
  auto j = fixture_json("qwen3_dense");
  j["hidden_size"] = "64";
  EXPECT_EQ(parse_error(j),
            "cfg.json: field 'hidden_size' (model_type qwen3) is a string (\"64\"), expected an integer");
  auto next = fixture_json("qwen3_next");
  next["rope_parameters"]["rope_theta"] = true;
  EXPECT_CONTAINS(parse_error(next), "field 'rope_parameters.rope_theta' (model_type qwen3_next) is a boolean");
}

TEST(HfConfigErrors, LayerTypesLengthMustMatchTheLayerCount) {
  auto j = fixture_json("qwen3_next");
  j["layer_types"] = {"linear_attention", "full_attention", "linear_attention"};
  EXPECT_EQ(parse_error(j),
            "cfg.json: field 'layer_types' (model_type qwen3_next) has 3 entries, expected one per layer "
            "(num_hidden_layers = 4)");
  auto v32 = fixture_json("deepseek_v32");
  v32["mlp_layer_types"] = {"dense"};
  EXPECT_CONTAINS(parse_error(v32), "field 'mlp_layer_types' (model_type deepseek_v32) has 1 entries");
}

TEST(HfConfigErrors, UnknownLayerTypesListTheValidOnes) {
  auto j = fixture_json("qwen3_next");
  j["layer_types"][2] = "sliding_attention";
  EXPECT_EQ(parse_error(j),
            "cfg.json: field 'layer_types[2]' (model_type qwen3_next) is \"sliding_attention\", "
            "expected one of: linear_attention, full_attention");
  auto nemotron = fixture_json("nemotron_h");
  nemotron["layers_block_type"][1] = "ssm";
  EXPECT_CONTAINS(parse_error(nemotron),
                  "field 'layers_block_type[1]' (model_type nemotron_h) is \"ssm\", expected one "
                  "of: linear_attention, full_attention, mlp, moe");
  auto v4 = fixture_json("deepseek_v4");
  v4["layer_types"][0] = "full_attention";
  EXPECT_CONTAINS(parse_error(v4), "expected one of: sliding_attention, compressed_sparse_attention");
}

TEST(HfConfigErrors, KeyValueHeadsMustDivideAttentionHeads) {
  auto j = fixture_json("qwen3_dense");
  j["num_key_value_heads"] = 3;
  EXPECT_EQ(parse_error(j),
            "cfg.json: field 'num_key_value_heads' (model_type qwen3) is 3, which does not divide "
            "num_attention_heads = 4");
}

TEST(HfConfigErrors, SizesMustBePositive) {
  auto j = fixture_json("qwen3_dense");
  j["num_attention_heads"] = 0;
  EXPECT_CONTAINS(parse_error(j), "field 'num_attention_heads' (model_type qwen3) is 0, expected a positive integer");
}

TEST(HfConfigErrors, NemotronHLayerCountIsTheScheduleLength) {
  auto j = fixture_json("nemotron_h");
  j["num_hidden_layers"] = 4;
  EXPECT_CONTAINS(parse_error(j),
                  "field 'layers_block_type' (model_type nemotron_h) has 6 entries, but "
                  "num_hidden_layers is 4");
  j["num_hidden_layers"] = 6;
  EXPECT_EQ(std::get<NemotronHConfig>(parse_hf_config(j, "cfg.json")).num_hidden_layers(), 6);
}

TEST(HfConfigErrors, MoeRoutingMustFitTheExperts) {
  auto j = fixture_json("deepseek_v32");
  j["n_group"] = 3;
  EXPECT_CONTAINS(parse_error(j),
                  "field 'n_group' (model_type deepseek_v32) is 3, which does not divide the 4 routed experts");
}

TEST(HfConfigErrors, DeepseekV4RopeWidthMustAgreeWithQkRopeHeadDim) {
  auto j = fixture_json("deepseek_v4");
  j["qk_rope_head_dim"] = 16;
  EXPECT_CONTAINS(parse_error(j),
                  "field 'qk_rope_head_dim' (model_type deepseek_v4) is 16, but the main RoPE rotates 8");
}

TEST(HfConfigErrors, FileErrorsNameThePath) {
  const std::string missing = "/nonexistent/strata/config.json";
  EXPECT_CONTAINS(testing::error_of([&] { read_hf_config(missing); }), missing + ": no such file");
  const TempFile broken("{\"model_type\": \"qwen3\",");
  EXPECT_CONTAINS(testing::error_of([&] { read_hf_config(broken.path()); }), broken.path().string() + ": not valid JSON");
  // nlohmann reports a number too large for a double as out_of_range, not as a parse error.
  const TempFile overflowing("{\"model_type\": \"qwen3\", \"rope_theta\": 1e400}");
  EXPECT_CONTAINS(testing::error_of([&] { read_hf_config(overflowing.path()); }),
                  overflowing.path().string() + ": not valid JSON");
}

// ---- the spellings of older files -------------------------------------------------------------

TEST(HfConfig, ReadsOldStyleTopLevelRope) {
  auto j = fixture_json("qwen3_dense");
  j.erase("rope_parameters");
  j["rope_theta"] = 1000000;
  const auto c = std::get<Qwen3Config>(parse_hf_config(j, "cfg.json"));
  EXPECT_EQ(c.rope.rope_theta, 1e6);
  EXPECT_EQ(c.rope.rope_type, "default");
  EXPECT_EQ(c.rope.partial_rotary_factor, 1.0);
}

TEST(HfConfig, PrefersRopeParametersOverTopLevelRope) {
  auto j = fixture_json("qwen3_next");
  j["rope_theta"] = 5.0;
  j["partial_rotary_factor"] = 0.5;
  const auto c = std::get<Qwen3NextConfig>(parse_hf_config(j, "cfg.json"));
  EXPECT_EQ(c.base.rope.rope_theta, 10000.0);
  EXPECT_EQ(c.base.rope.partial_rotary_factor, 0.25);
}

TEST(HfConfig, HeadDimDefaultsToHiddenSizeOverHeads) {
  auto j = fixture_json("qwen3_dense");
  j.erase("head_dim");
  j["num_attention_heads"] = 8;
  EXPECT_EQ(std::get<Qwen3Config>(parse_hf_config(j, "cfg.json")).head_dim, 8);
}

TEST(HfConfig, Qwen3NextBeforeLayerTypes) {
  auto j = fixture_json("qwen3_next");
  j.erase("layer_types");
  j.erase("rope_parameters");
  j.erase("partial_rotary_factor");
  j["full_attention_interval"] = 2;
  const auto c = std::get<Qwen3NextConfig>(parse_hf_config(j, "cfg.json"));
  EXPECT_EQ(c.layer_types,
            (std::vector<std::string>{"linear_attention", "full_attention", "linear_attention", "full_attention"}));
  EXPECT_EQ(c.base.rope.partial_rotary_factor, 0.25);  // HF's Qwen3-Next default
}

TEST(HfConfig, NemotronHHybridOverridePatternAndBareInfinity) {
  auto j = fixture_json("nemotron_h");
  j.erase("layers_block_type");
  j["hybrid_override_pattern"] = "M-*-M-";
  j["num_hidden_layers"] = 6;
  auto text = j.dump();
  const auto limit = text.find("{\"__float__\":\"Infinity\"}");
  ASSERT_NE(limit, std::string::npos);
  text.replace(limit, std::string("{\"__float__\":\"Infinity\"}").size(), "Infinity");
  const TempFile file(text);
  const auto c = std::get<NemotronHConfig>(read_hf_config(file.path()));
  EXPECT_EQ(c.layers_block_type,
            (std::vector<std::string>{"linear_attention", "mlp", "full_attention", "mlp", "linear_attention", "mlp"}));
  EXPECT_EQ(c.time_step_limit.second, kInf);

  j["hybrid_override_pattern"] = "M-*?M-";
  EXPECT_CONTAINS(parse_error(j), "field 'hybrid_override_pattern' (model_type nemotron_h) has '?' at position 3");
}

TEST(HfConfig, DeepseekV32ReleasedCheckpointSpelling) {
  auto j = fixture_json("deepseek_v32");
  for (const char* field : {"layer_types", "mlp_layer_types", "rope_parameters", "head_dim", "qk_head_dim"})
    j.erase(field);
  j["rope_theta"] = 10000;
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 40}};
  const auto c = std::get<DeepseekV32Config>(parse_hf_config(j, "cfg.json"));
  EXPECT_EQ(c.layer_types, (std::vector<std::string>(2, "deepseek_sparse_attention")));
  EXPECT_EQ(c.mlp_layer_types, (std::vector<std::string>{"dense", "sparse"}));  // from first_k_dense_replace = 1
  EXPECT_EQ(c.rope.rope_theta, 10000.0);
  EXPECT_EQ(c.rope.rope_type, "yarn");
}

TEST(HfConfig, DeepseekV4ReleasedCheckpointSpelling) {
  auto j = fixture_json("deepseek_v4");
  for (const char* field :
       {"layer_types", "compress_rates", "mlp_layer_types", "rope_parameters", "partial_rotary_factor"})
    j.erase(field);
  j["compress_ratios"] = {128, 4, 0, 4};  // the last entry is the MTP layer's
  j["num_nextn_predict_layers"] = 1;
  j["num_hash_layers"] = 2;
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 16}};
  const auto c = std::get<DeepseekV4Config>(parse_hf_config(j, "cfg.json"));
  EXPECT_EQ(c.compress_rates.at("heavily_compressed_attention"), 128);
  EXPECT_EQ(c.layer_types, (std::vector<std::string>{"heavily_compressed_attention", "compressed_sparse_attention",
                                                     "sliding_attention"}));
  EXPECT_EQ(c.mlp_layer_types, (std::vector<std::string>{"hash_moe", "hash_moe", "moe"}));
  EXPECT_EQ(c.main_rope.rope_theta, 10000.0);
  EXPECT_EQ(c.main_rope.rope_type, "default");
  EXPECT_EQ(c.main_rope.partial_rotary_factor, 0.25);  // qk_rope_head_dim 8 of head_dim 32
  EXPECT_EQ(c.compress_rope.rope_theta, 160000.0);
  EXPECT_EQ(c.compress_rope.rope_type, "yarn");

  j["compress_ratios"] = {128, 8, 0};
  EXPECT_CONTAINS(parse_error(j), "field 'compress_ratios[1]' (model_type deepseek_v4) is 8");
}

// ---- scaled RoPE ------------------------------------------------------------------------------

TEST(HfConfig, ReadsEveryScalingFieldOfRopeParameters) {
  auto j = fixture_json("qwen3_dense");
  j["rope_parameters"] = {{"rope_type", "yarn"},  {"rope_theta", 5e5},       {"factor", 4},
                          {"beta_fast", 16},      {"beta_slow", 2},          {"mscale", 0.7},
                          {"mscale_all_dim", 0.6}, {"attention_factor", 1.2}, {"truncate", false},
                          {"original_max_position_embeddings", 2048}};
  const auto rope = std::get<Qwen3Config>(parse_hf_config(j, "cfg.json")).rope;
  EXPECT_EQ(rope.rope_type, "yarn");
  EXPECT_EQ(rope.origin, "rope_parameters");
  EXPECT_EQ(rope.rope_theta, 5e5);
  EXPECT_EQ(rope.factor, 4.0);
  EXPECT_EQ(rope.beta_fast, 16.0);
  EXPECT_EQ(rope.beta_slow, 2.0);
  EXPECT_EQ(rope.mscale, 0.7);
  EXPECT_EQ(rope.mscale_all_dim, 0.6);
  EXPECT_EQ(rope.attention_factor, 1.2);
  EXPECT_EQ(rope.truncate, false);
  EXPECT_EQ(rope.original_max_position_embeddings, 2048);
  EXPECT_FALSE(rope.low_freq_factor.has_value());
}

TEST(HfConfig, ReadsLegacyRopeScalingLikeRopeParameters) {
  auto j = fixture_json("qwen3_dense");
  j.erase("rope_parameters");
  j["rope_theta"] = 5e5;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8}, {"low_freq_factor", 1},
                       {"high_freq_factor", 4}, {"original_max_position_embeddings", 8192}};
  const auto rope = std::get<Qwen3Config>(parse_hf_config(j, "cfg.json")).rope;
  EXPECT_EQ(rope.rope_type, "llama3");
  EXPECT_EQ(rope.origin, "rope_scaling");
  EXPECT_EQ(rope.rope_theta, 5e5);
  EXPECT_EQ(rope.factor, 8.0);
  EXPECT_EQ(rope.low_freq_factor, 1.0);
  EXPECT_EQ(rope.high_freq_factor, 4.0);
  EXPECT_EQ(rope.original_max_position_embeddings, 8192);
}

// As HF's standardize_rope_params: a top-level original_max_position_embeddings wins, then the
// nested one, then max_position_embeddings (32768 in the fixture); YaRN's factor falls back to
// max_position_embeddings over it.
TEST(HfConfig, ScaledRopeContextFallsBackAsHfDoes) {
  auto j = fixture_json("qwen3_dense");
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 1e4}, {"factor", 4}};
  EXPECT_EQ(std::get<Qwen3Config>(parse_hf_config(j, "cfg.json")).rope.original_max_position_embeddings, 32768);
  j["rope_parameters"]["original_max_position_embeddings"] = 4096;
  EXPECT_EQ(std::get<Qwen3Config>(parse_hf_config(j, "cfg.json")).rope.original_max_position_embeddings, 4096);
  j["original_max_position_embeddings"] = 8192;
  EXPECT_EQ(std::get<Qwen3Config>(parse_hf_config(j, "cfg.json")).rope.original_max_position_embeddings, 8192);
  j["rope_parameters"].erase("factor");
  EXPECT_EQ(std::get<Qwen3Config>(parse_hf_config(j, "cfg.json")).rope.factor, 4.0);  // 32768 / 8192
}

TEST(HfConfigErrors, ScalingFieldsATypeNeedsAreNamed) {
  auto j = fixture_json("qwen3_dense");
  j["rope_parameters"] = {{"rope_type", "linear"}, {"rope_theta", 1e4}};
  EXPECT_CONTAINS(parse_error(j), "cfg.json: required field 'rope_parameters.factor' is missing (model_type qwen3)");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"factor", 8}, {"high_freq_factor", 4}};
  EXPECT_CONTAINS(parse_error(j), "required field 'rope_parameters.low_freq_factor' is missing (model_type qwen3)");
  j.erase("max_position_embeddings");
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4}};
  EXPECT_CONTAINS(parse_error(j), "cfg.json: field 'rope_parameters.original_max_position_embeddings' (model_type "
                                  "qwen3) is missing, and so is max_position_embeddings");
}

}  // namespace
}  // namespace strata::io
