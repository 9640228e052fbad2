// DeepSeek-V4 (mHC, shared-KV attention with sliding, compressed sparse and heavily compressed
// branches, sqrtsoftplus-routed MoE) built from typed specs against HF (tests/fixtures/hf/deepseek_v4).
#include "strata/hf/deepseek_v4.h"

#include <gtest/gtest.h>

#include <fstream>

#include "strata/core/error.h"
#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"
#include "test_util.h"

namespace strata::hf {
namespace {

nlohmann::json fixture_config() {
  std::ifstream in(testing::fixture("deepseek_v4") + "/model/config.json");
  return nlohmann::json::parse(in);
}

io::DeepseekV4Config parse(const nlohmann::json& json) {
  return std::get<io::DeepseekV4Config>(io::parse_hf_config(json, "config.json"));
}

TEST(HfDeepseekV4, MatchesLogitsLossAndEveryGradient) {
  auto result = hf_check(testing::fixture("deepseek_v4"), testing::test_device());
  EXPECT_EQ(result.model_type, "deepseek_v4");
  EXPECT_LE(result.logits_rel, 1e-4);
  EXPECT_LE(result.loss_abs, 1e-5);
  EXPECT_LE(result.grad_rel_max, 1e-3) << result.grad_rel.front().first;
  // Every gradient HF has: the indexer and the expert bias have none, in HF as here.
  auto reference = io::SafetensorsFile::open(testing::fixture("deepseek_v4") + "/reference.safetensors");
  size_t reference_grads = 0;
  for (const auto& name : reference.names()) reference_grads += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(result.grad_rel.size(), reference_grads);
  EXPECT_TRUE(result.pass);
}

TEST(HfDeepseekV4, FirstLayerMatchesHf) {
  auto hf = load_hf_model(testing::fixture("deepseek_v4") + "/model");
  auto ref = io::SafetensorsFile::open(testing::fixture("deepseek_v4") + "/reference.safetensors");
  ForwardContext ctx;
  auto out = hf.model->decoder().layer(0).forward(ref.load("capture.model.layers.0.in0"), ctx);  // [B, T, 4, H]
  EXPECT_LE(relative_error(out, ref.load("capture.model.layers.0.out0")), 1e-5);
}

// The fixture's model decoding its reference tokens with every cache (the sliding window, the
// compressed entries and incomplete windows of both compressors, the indexer's) gives the logits
// of the full forward: a prompt of 21 tokens (past the window of 16 and one HCA block), then one
// token at a time to 100 (25 CSA and 6 HCA entries). index_topk 32 reads every complete entry:
// the fixture's indexer scores tie at 0, and a top-k over fewer entries may pick another of them.
TEST(HfDeepseekV4, IncrementalDecodingEqualsTheFullForward) {
  const auto dir = testing::fresh_temp_dir("deepseek_v4_decode");
  std::filesystem::create_directories(dir);
  auto json = fixture_config();
  json["index_topk"] = 32;
  std::ofstream(dir / "config.json") << json.dump();
  std::filesystem::copy_file(testing::fixture("deepseek_v4") + "/model/model.safetensors", dir / "model.safetensors");
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
  std::filesystem::remove_all(dir);
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

TEST(HfDeepseekV4, HashRoutingAndSeveralKvHeadsAreRefusedByName) {
  auto json = fixture_config();
  json["mlp_layer_types"] = {"hash_moe", "moe", "moe"};
  EXPECT_NE(testing::error_of([&] { deepseek_v4_transformer_config(parse(json)); })
                .find("mlp_layer_types[0] = \"hash_moe\""),
            std::string::npos);
  json = fixture_config();
  json["num_key_value_heads"] = 2;
  json["num_attention_heads"] = 4;
  const auto message = testing::error_of([&] { deepseek_v4_transformer_config(parse(json)); });
  EXPECT_NE(message.find("num_key_value_heads = 2"), std::string::npos) << message;
}

}  // namespace
}  // namespace strata::hf
