// Qwen3-Next built from typed specs and the pattern language against HF
// (tests/fixtures/hf/qwen3_next: Gated DeltaNet, gated attention, MoE with a gated shared expert,
// one dense MLP layer).
#include "strata/hf/qwen3_next.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "strata/core/error.h"
#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"
#include "test_util.h"

namespace strata::hf {
namespace {

const std::string kFixture = testing::fixture("qwen3_next");

nlohmann::json fixture_config_json() {
  std::ifstream in(kFixture + "/model/config.json");
  return nlohmann::json::parse(in);
}

io::Qwen3NextConfig parse(const nlohmann::json& json) {
  return std::get<io::Qwen3NextConfig>(io::parse_hf_config(json, "test config.json"));
}

TEST(HfQwen3Next, MatchesLogitsLossAndEveryGradient) {
  auto result = hf_check(kFixture, testing::test_device());
  EXPECT_EQ(result.model_type, "qwen3_next");
  EXPECT_LE(result.logits_rel, 1e-4);
  EXPECT_LE(result.loss_abs, 1e-5);
  EXPECT_LE(result.grad_rel_max, 1e-3) << result.grad_rel.front().first;
  // Every gradient HF recorded is compared.
  auto reference = io::SafetensorsFile::open(kFixture + "/reference.safetensors");
  size_t hf_grads = 0;
  for (const auto& name : reference.names()) hf_grads += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(result.grad_rel.size(), hf_grads);
  EXPECT_TRUE(result.pass);
}

TEST(HfQwen3Next, HiddenStatesMatchLayerByLayer) {
  auto hf = load_hf_model(kFixture + "/model");
  auto ref = io::SafetensorsFile::open(kFixture + "/reference.safetensors");
  auto& model = *hf.model;
  ForwardContext ctx;
  model.forward(ref.load("input_ids"), ctx);  // fills ctx's rotary tables
  // hidden_states.i is HF layer i's input; the last layer's output has the final norm applied.
  for (size_t i = 0; i + 1 < model.decoder().num_layers(); ++i) {
    auto out = model.decoder().layer(i).forward(ref.load(cat("hidden_states.", i)), ctx);
    EXPECT_LE(relative_error(out, ref.load(cat("hidden_states.", i + 1))), 1e-5) << "layer " << i;
  }
}

TEST(HfQwen3Next, ConfigBecomesFusedPatternAndFields) {
  const auto hf = parse(fixture_config_json());
  const auto c = qwen3_next_transformer_config(hf);
  // layer_types (linear, full, linear, full); mlp_only_layers [1] keeps layer 1 dense.
  EXPECT_EQ(c.hybrid_layer_pattern, "[GE][*-][GE][*E]");
  EXPECT_EQ(c.num_layers, 8);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.ffn_hidden_size, 96);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_query_groups, 2);
  EXPECT_EQ(c.kv_channels, 16);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_TRUE(c.layernorm_zero_centered_gamma);
  EXPECT_EQ(c.layernorm_epsilon, 1e-6);
  EXPECT_TRUE(c.qk_layernorm);
  EXPECT_TRUE(c.attention_output_gate);
  EXPECT_EQ(c.rotary_percent, 0.25);
  EXPECT_EQ(c.rotary_dim(), 4);
  EXPECT_EQ(c.rotary_base, 10000.0);
  EXPECT_FALSE(c.share_embeddings_and_output_weights);
  EXPECT_EQ(c.linear_conv_kernel_dim, 4);
  EXPECT_EQ(c.linear_key_head_dim, 16);
  EXPECT_EQ(c.linear_value_head_dim, 16);
  EXPECT_EQ(c.linear_num_key_heads, 2);
  EXPECT_EQ(c.linear_num_value_heads, 4);
  EXPECT_EQ(c.num_moe_experts, 4);
  EXPECT_EQ(c.moe_router_topk, 2);
  EXPECT_EQ(c.moe_ffn_hidden_size, 32);
  EXPECT_EQ(c.moe_shared_expert_intermediate_size, 48);
  EXPECT_TRUE(c.moe_shared_expert_gate);
  EXPECT_EQ(c.moe_router_score_function, "softmax");
  EXPECT_TRUE(c.moe_router_norm_topk_prob);
  EXPECT_EQ(c.moe_aux_loss_coeff, 0.001);
}

TEST(HfQwen3Next, LayerScheduleFollowsHfRules) {
  auto json = fixture_config_json();
  // Without layer_types every full_attention_interval-th layer is full attention; with
  // decoder_sparse_step 2 only layers 1, 3, ... (0-based) are MoE, unless listed dense.
  json.erase("layer_types");
  json["num_hidden_layers"] = 6;
  json["full_attention_interval"] = 3;
  json["decoder_sparse_step"] = 2;
  json["mlp_only_layers"] = std::vector<int>{3};
  EXPECT_EQ(qwen3_next_layer_pattern(parse(json)), "[G-][GE][*-][G-][G-][*E]");
}

TEST(HfQwen3Next, UnsupportedConfigValuesAreNamed) {
  auto json = fixture_config_json();
  json["attention_bias"] = true;
  try {
    qwen3_next_transformer_config(parse(json));
    ADD_FAILURE() << "attention_bias = true was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("qwen3_next config: attention_bias = true"), std::string::npos) << e.what();
  }
  json = fixture_config_json();
  json["rope_parameters"]["rope_type"] = "longrope";
  try {
    qwen3_next_transformer_config(parse(json));
    ADD_FAILURE() << "rope_type longrope was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rope_type \"longrope\" (rope_parameters) is not supported"),
              std::string::npos)
        << e.what();
  }
}

TEST(HfQwen3Next, ExportRoundTripsTheCheckpoint) {
  const auto dir = kFixture + "/model";
  auto hf = load_hf_model(dir);
  auto exported = hf.tensor_map.export_hf(hf.model->canonical_state_dict());
  auto original = io::CheckpointReader::open(dir);
  std::set<std::string> exported_names;
  for (const auto& [name, tensor] : exported) {
    exported_names.insert(name);
    EXPECT_TRUE(at::equal(tensor, original.load(name))) << name;
  }
  const auto names = original.names();
  EXPECT_EQ(exported_names, std::set<std::string>(names.begin(), names.end()));
}

TEST(HfQwen3Next, RuntimeNamesAreHfsFusedExperts) {
  auto hf = load_hf_model(kFixture + "/model");
  auto checkpoint = io::CheckpointReader::open(kFixture + "/model");
  auto runtime = hf.tensor_map.export_runtime(hf.model->canonical_state_dict());
  // The names HF's parameters have at run time: those it recorded gradients for.
  auto reference = io::SafetensorsFile::open(kFixture + "/reference.safetensors");
  std::set<std::string> hf_parameters;
  for (const auto& name : reference.names())
    if (name.rfind("grad.", 0) == 0) hf_parameters.insert(name.substr(5));
  std::set<std::string> runtime_names;
  for (const auto& [name, _] : runtime) runtime_names.insert(name);
  EXPECT_EQ(runtime_names, hf_parameters);
  // HF 5 fuses expert e's gate_proj and up_proj into gate_up_proj[e] = [gate; up], down_proj[e] as is.
  const std::string experts = "model.layers.3.mlp.experts.";
  for (int64_t e = 0; e < 4; ++e) {
    const auto expert = cat(experts, e, ".");
    EXPECT_TRUE(at::equal(runtime.at(experts + "gate_up_proj")[e],
                          at::cat({checkpoint.load(expert + "gate_proj.weight"), checkpoint.load(expert + "up_proj.weight")})))
        << e;
    EXPECT_TRUE(at::equal(runtime.at(experts + "down_proj")[e], checkpoint.load(expert + "down_proj.weight"))) << e;
  }
}

}  // namespace
}  // namespace strata::hf
