// DeepSeek-V4 (mHC, shared-KV attention with sliding, compressed sparse and heavily compressed
// branches, sqrtsoftplus-routed MoE) built from typed specs against HF (tests/fixtures/hf/deepseek_v4).
#include "strata/hf/deepseek_v4.h"

#include <gtest/gtest.h>

#include <fstream>

#include "strata/core/error.h"
#include "strata/io/safetensors.h"
#include "hf_fixture_checks.h"

namespace strata::hf {
namespace {

nlohmann::json fixture_config() { return testing::fixture_config("deepseek_v4"); }

io::DeepseekV4Config parse(const nlohmann::json& json) {
  return testing::parse_hf_config_as<io::DeepseekV4Config>(json);
}

TEST(HfDeepseekV4, MatchesLogitsLossAndEveryGradient) {
  testing::expect_model_matches_hf("deepseek_v4", "deepseek_v4");
}

TEST(HfDeepseekV4, FirstLayerMatchesHf) { testing::expect_first_layer_matches_hf("deepseek_v4"); }

// The fixture's model decoding its reference tokens with every cache (the sliding window, the
// compressed entries and incomplete windows of both compressors, the indexer's) gives the logits
// of the full forward: a prompt of 21 tokens (past the window of 16 and one HCA block), then one
// token at a time to 100 (25 CSA and 6 HCA entries), the indexer keeping 8. The fixture's indexer
// scores tie at 0 across the 8th place; the lowest-index rule (top_k_selection.h) picks the same
// tied entries whether a call ranks all 25 entries or the few made so far.
TEST(HfDeepseekV4, IncrementalDecodingEqualsTheFullForward) {
  const auto dir = testing::fixture("deepseek_v4") + "/model";
  auto hf = load_hf_model(dir);
  auto ref = io::SafetensorsFile::open(testing::fixture("deepseek_v4") + "/reference.safetensors");
  auto& model = *hf.model;
  model.eval();
  at::NoGradGuard no_grad;
  auto ids = ref.load("input_ids");
  auto full = model.forward(ids);
  InferenceCache cache;
  ForwardContext ctx{.cache = &cache};
  std::vector<at::Tensor> steps{model.forward(ids.narrow(1, 0, 21), ctx)};
  for (int64_t t = 21; t < ids.size(1); ++t) {
    ForwardContext step{.cache = &cache};
    steps.push_back(model.forward(ids.narrow(1, t, 1), step));
  }
  auto decoded = at::cat(steps, 1);
  EXPECT_LE(relative_error(decoded, full), 1e-5);
  EXPECT_EQ(cache.sequence_length(), ids.size(1));
}

TEST(HfDeepseekV4, ConfigBecomesFusedSharedKvAttentionLayers) {
  auto c = deepseek_v4_transformer_config(parse(fixture_config()));
  EXPECT_EQ(c.hybrid_layer_pattern, "[WE][CE][HE]");
  EXPECT_EQ(c.num_layers, 6);
  EXPECT_EQ(c.num_query_groups, 1);
  EXPECT_EQ(c.kv_channels, 32);
  EXPECT_EQ(c.qk_pos_emb_head_dim, 8);
  EXPECT_EQ(c.sliding_window_size, 16);
  EXPECT_EQ(c.csa_compress_rate, 4);
  EXPECT_EQ(c.hca_compress_rate, 16);
  EXPECT_DOUBLE_EQ(c.rotary_base, 10000.0);
  EXPECT_DOUBLE_EQ(c.compress_rotary_base, 160000.0);
  EXPECT_EQ(c.attention_output_groups, 2);
  EXPECT_EQ(c.attention_output_lora_rank, 16);
  EXPECT_EQ(c.dsa_indexer_topk, 8);
  EXPECT_EQ(c.moe_router_score_function, "sqrtsoftplus");
  EXPECT_DOUBLE_EQ(c.moe_router_topk_scaling_factor, 1.5);
  EXPECT_DOUBLE_EQ(c.activation_func_clamp_value, 10.0);
  EXPECT_TRUE(c.enable_mhc_connections);
  EXPECT_EQ(c.mhc_num_residual_streams, 4);
}

TEST(HfDeepseekV4, ExportRoundTripsTheCheckpointUnderDeepSeeksNames) {
  auto dir = testing::fixture("deepseek_v4") + "/model";
  auto hf = load_hf_model(dir);
  auto exported = hf.tensor_map.export_hf(hf.model->canonical_state_dict());
  auto original = io::CheckpointReader::open(dir);
  ASSERT_EQ(exported.size(), original.names().size());
  for (const auto& [name, tensor] : exported) EXPECT_TRUE(at::equal(tensor, original.load(name))) << name;
  EXPECT_TRUE(exported.count("model.layers.1.attn.indexer.compressor.ape"));
  // Gradients use the names HF's modules have at run time.
  auto runtime = hf.tensor_map.export_runtime(hf.model->canonical_state_dict());
  EXPECT_TRUE(runtime.count("model.layers.1.self_attn.compressor.indexer.position_bias"));
  EXPECT_TRUE(runtime.count("model.layers.0.mlp.experts.gate_up_proj"));
}

// mlp_layer_types "hash_moe" (or the legacy num_hash_layers) makes those layers' MoE hash-routed:
// their router holds HF's tid2eid under DeepSeek's name, ffn.gate.tid2eid, and no gate.bias.
TEST(HfDeepseekV4, HashMoeLayersRouteByTheirTokenIdTable) {
  auto json = fixture_config();
  json["mlp_layer_types"] = {"hash_moe", "moe", "hash_moe"};
  auto c = deepseek_v4_transformer_config(parse(json));
  EXPECT_EQ(c.hybrid_layer_pattern, "[WE][CE][HE]");
  EXPECT_EQ(c.moe_hash_routed_layers, (std::vector<int64_t>{1, 5}));
  json.erase("mlp_layer_types");
  json["num_hash_layers"] = 2;
  EXPECT_EQ(deepseek_v4_transformer_config(parse(json)).moe_hash_routed_layers, (std::vector<int64_t>{1, 3}));

  json = fixture_config();
  json["mlp_layer_types"] = {"hash_moe", "moe", "moe"};
  auto hf = build_hf_model(parse(json));
  auto exported = hf.tensor_map.export_hf(hf.model->canonical_state_dict());
  ASSERT_TRUE(exported.count("model.layers.0.ffn.gate.tid2eid"));
  EXPECT_EQ(exported.at("model.layers.0.ffn.gate.tid2eid").sizes(), (std::vector<int64_t>{256, 2}));
  EXPECT_EQ(exported.at("model.layers.0.ffn.gate.tid2eid").scalar_type(), at::kLong);
  EXPECT_FALSE(exported.count("model.layers.0.ffn.gate.bias"));
  EXPECT_TRUE(exported.count("model.layers.1.ffn.gate.bias"));
  EXPECT_FALSE(exported.count("model.layers.1.ffn.gate.tid2eid"));
  EXPECT_TRUE(hf.tensor_map.export_runtime(hf.model->canonical_state_dict()).count("model.layers.0.mlp.gate.tid2eid"));

  // Import: a table stored as DeepSeek's release stores it (int32) reaches the router as int64.
  auto table = at::randint(4, {256, 2}, at::kInt);
  exported["model.layers.0.ffn.gate.tid2eid"] = table;
  std::vector<std::string> names;
  for (const auto& [name, _] : exported) names.push_back(name);
  auto tensors = hf.tensor_map.import([&](const std::string& name) { return exported.at(name); }, names, "test");
  auto fresh = build_hf_model(parse(json));
  fresh.model->load_canonical_state_dict(tensors, "test");
  // A copy of the handle: the state dict is a temporary, a reference into it would dangle.
  const auto loaded = fresh.model->canonical_state_dict().at("decoder.layers.1.mlp.router.tid2eid");
  EXPECT_EQ(loaded.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(loaded, table.to(at::kLong)));
}

TEST(HfDeepseekV4, SeveralKvHeadsAreRefusedByName) {
  auto json = fixture_config();
  json["num_key_value_heads"] = 2;
  json["num_attention_heads"] = 4;
  const auto message = testing::error_of([&] { deepseek_v4_transformer_config(parse(json)); });
  EXPECT_NE(message.find("num_key_value_heads = 2"), std::string::npos) << message;
}

}  // namespace
}  // namespace strata::hf
