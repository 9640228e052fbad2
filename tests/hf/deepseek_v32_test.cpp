// DeepSeek-V3.2 (MLA + DSA + sigmoid-routed MoE) built from typed specs against HF
// (tests/fixtures/hf/deepseek_v32).
#include "strata/hf/deepseek_v32.h"

#include <gtest/gtest.h>

#include <fstream>

#include "strata/core/error.h"
#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"
#include "test_util.h"

namespace strata::hf {
namespace {

nlohmann::json fixture_config() {
  std::ifstream in(testing::fixture("deepseek_v32") + "/model/config.json");
  return nlohmann::json::parse(in);
}

io::DeepseekV32Config parse(const nlohmann::json& json) {
  return std::get<io::DeepseekV32Config>(io::parse_hf_config(json, "config.json"));
}

TEST(HfDeepseekV32, MatchesLogitsLossAndEveryGradient) {
  auto result = hf_check(testing::fixture("deepseek_v32"), testing::test_device());
  EXPECT_EQ(result.model_type, "deepseek_v32");
  EXPECT_LE(result.logits_rel, 1e-4);
  EXPECT_LE(result.loss_abs, 1e-5);
  EXPECT_LE(result.grad_rel_max, 1e-3) << result.grad_rel.front().first;
  // Every gradient HF has: the indexers and the expert bias have none, in HF as here.
  auto reference = io::SafetensorsFile::open(testing::fixture("deepseek_v32") + "/reference.safetensors");
  size_t reference_grads = 0;
  for (const auto& name : reference.names()) reference_grads += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(result.grad_rel.size(), reference_grads);
  EXPECT_TRUE(result.pass);
}

TEST(HfDeepseekV32, FirstLayerMatchesHf) {
  auto hf = load_hf_model(testing::fixture("deepseek_v32") + "/model");
  auto ref = io::SafetensorsFile::open(testing::fixture("deepseek_v32") + "/reference.safetensors");
  ForwardContext ctx;
  hf.model->forward(ref.load("input_ids"), ctx);  // fills ctx as the model does for its layers
  auto out = hf.model->decoder().layer(0).forward(ref.load("capture.model.layers.0.in0"), ctx);
  EXPECT_LE(relative_error(out, ref.load("capture.model.layers.0.out0")), 1e-5);
}

TEST(HfDeepseekV32, ConfigBecomesFusedSparseAttentionLayers) {
  auto c = deepseek_v32_transformer_config(parse(fixture_config()));
  EXPECT_EQ(c.hybrid_layer_pattern, "[D-][DE]");
  EXPECT_EQ(c.num_layers, 4);
  EXPECT_EQ(c.q_lora_rank, 32);
  EXPECT_EQ(c.kv_lora_rank, 32);
  EXPECT_EQ(c.qk_head_dim, 16);
  EXPECT_EQ(c.qk_pos_emb_head_dim, 8);
  EXPECT_EQ(c.v_head_dim, 16);
  EXPECT_EQ(c.dsa_indexer_n_heads, 2);
  EXPECT_EQ(c.dsa_indexer_head_dim, 16);
  EXPECT_EQ(c.dsa_indexer_topk, 16);
  EXPECT_EQ(c.moe_router_score_function, "sigmoid");
  EXPECT_TRUE(c.moe_router_enable_expert_bias);
  EXPECT_DOUBLE_EQ(c.moe_router_topk_scaling_factor, 2.5);
  EXPECT_EQ(c.moe_shared_expert_intermediate_size, 32);
}

TEST(HfDeepseekV32, ExportRoundTripsTheCheckpoint) {
  // Includes undoing the row permutation of the interleaved RoPE projections.
  auto dir = testing::fixture("deepseek_v32") + "/model";
  auto hf = load_hf_model(dir);
  auto exported = hf.tensor_map.export_hf(hf.model->canonical_state_dict());
  auto original = io::CheckpointReader::open(dir);
  ASSERT_EQ(exported.size(), original.names().size());
  for (const auto& [name, tensor] : exported) EXPECT_TRUE(at::equal(tensor, original.load(name))) << name;
  // ... and the permutation is not the identity.
  auto strata_q = hf.model->canonical_state_dict().at("decoder.layers.0.self_attention.linear_q_up_proj.weight");
  EXPECT_FALSE(at::equal(strata_q, original.load("model.layers.0.self_attn.q_b_proj.weight")));
}

void expect_rejected(const nlohmann::json& json, const std::string& message) {
  try {
    deepseek_v32_transformer_config(parse(json));
    ADD_FAILURE() << "accepted; expected an error containing: " << message;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

TEST(HfDeepseekV32, SettingsStrataCannotReproduceAreErrors) {
  auto json = fixture_config();
  json["attention_bias"] = true;
  expect_rejected(json, "attention_bias = true");

  json = fixture_config();
  json["rope_parameters"] = {{"rope_type", "dynamic"}, {"rope_theta", 10000.0}, {"factor", 40.0}};
  expect_rejected(json, "rope_type \"dynamic\" (rope_parameters) is not supported");

  json = fixture_config();
  json["n_group"] = 2;
  json["topk_group"] = 1;
  expect_rejected(json, "group-limited expert routing is not supported");
}

}  // namespace
}  // namespace strata::hf
