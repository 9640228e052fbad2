// DeepSeek-V3.2 (MLA + DSA + sigmoid-routed MoE) built from typed specs against HF
// (tests/fixtures/hf/deepseek_v32).
#include "strata/hf/deepseek_v32.h"

#include <gtest/gtest.h>

#include <fstream>

#include "strata/core/error.h"
#include "strata/model/build_model.h"
#include "strata/io/safetensors.h"
#include "hf_fixture_checks.h"

namespace strata::hf {
namespace {

nlohmann::json fixture_config() { return testing::fixture_config("deepseek_v32"); }

io::DeepseekV32Config parse(const nlohmann::json& json) {
  return testing::parse_hf_config_as<io::DeepseekV32Config>(json);
}

TEST(HfDeepseekV32, MatchesLogitsLossAndEveryGradient) {
  testing::expect_model_matches_hf("deepseek_v32", "deepseek_v32");
}

TEST(HfDeepseekV32, FirstLayerMatchesHf) { testing::expect_first_layer_matches_hf("deepseek_v32"); }

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

// DeepSeek's checkpoints store each MTP layer after the decoder (model.layers.<num_hidden_layers>),
// which HF transformers drops. The fixture's checkpoint, with such a layer added, loads it into
// strata's MTP depth by name and shape; the names are DeepSeek-V3's.
TEST(HfDeepseekV32, TheMtpLayerAfterTheDecoderLoadsIntoTheMtpDepth) {
  const auto fixture = testing::fixture("deepseek_v32") + "/model";
  const auto dir = testing::fresh_temp_dir("deepseek_v32_mtp");
  std::filesystem::create_directories(dir);
  auto json = fixture_config();
  json["num_nextn_predict_layers"] = 1;
  std::ofstream(dir / "config.json") << json.dump();

  // The MTP layer's tensors, named and shaped as the tensor map exports them from a model with it.
  auto config = std::make_shared<const TransformerConfig>(deepseek_v32_transformer_config(parse(json)));
  EXPECT_EQ(config->hybrid_layer_pattern, "[D-][DE]/[DE]");
  at::manual_seed(11);
  auto with_mtp = build_language_model(config);
  auto exported = deepseek_v32_tensor_map(*config).export_hf(with_mtp->canonical_state_dict());
  std::map<std::string, at::Tensor> mtp_layer;
  for (const auto& [name, tensor] : exported)
    if (name.rfind("model.layers.2.", 0) == 0) mtp_layer.emplace(name, tensor);
  for (const char* name : {"enorm.weight", "hnorm.weight", "eh_proj.weight", "shared_head.norm.weight",
                           "shared_head.head.weight", "embed_tokens.weight", "input_layernorm.weight",
                           "self_attn.q_a_proj.weight", "self_attn.indexer.wk.weight",
                           "post_attention_layernorm.weight", "mlp.gate.weight", "mlp.shared_experts.up_proj.weight"})
    EXPECT_TRUE(mtp_layer.count(cat("model.layers.2.", name))) << name;
  EXPECT_EQ(mtp_layer.at("model.layers.2.eh_proj.weight").sizes(), (at::IntArrayRef{64, 128}));

  // The fixture's tensors plus that layer, with the copies of the embedding and the head the
  // fixture's own.
  auto original = io::CheckpointReader::open(fixture).load_all();
  auto checkpoint = original;
  for (const auto& [name, tensor] : mtp_layer) checkpoint.emplace(name, tensor);
  checkpoint["model.layers.2.embed_tokens.weight"] = original.at("model.embed_tokens.weight");
  checkpoint["model.layers.2.shared_head.head.weight"] = original.at("lm_head.weight");
  io::save_checkpoint(dir, checkpoint);

  auto loaded = load_hf_model(dir);
  ASSERT_EQ(loaded.model->mtp_depths(), 1u);
  auto strata = loaded.model->canonical_state_dict();
  const auto expected = with_mtp->canonical_state_dict();
  for (const auto& [name, tensor] : strata) {
    if (name.rfind("mtp.", 0) != 0) continue;
    EXPECT_TRUE(at::equal(tensor, expected.at(name))) << name;
  }
  EXPECT_TRUE(at::equal(strata.at("mtp.layers.0.final_layernorm.weight"),
                        mtp_layer.at("model.layers.2.shared_head.norm.weight")));

  // A copy of the embedding that is not the model's own is refused.
  checkpoint["model.layers.2.embed_tokens.weight"] = original.at("model.embed_tokens.weight") + 1;
  io::save_checkpoint(dir, checkpoint);
  EXPECT_NE(testing::error_of([&] { load_hf_model(dir); })
                .find("'model.layers.2.embed_tokens.weight' should repeat embedding.word_embeddings.weight"),
            std::string::npos);

  // Without the layer in the checkpoint (what HF saves), the model has no MTP, as HF's.
  std::filesystem::copy_file(fixture + "/model.safetensors", dir / "model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(load_hf_model(dir).model->mtp_depths(), 0u);
  std::filesystem::remove_all(dir);
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
