// Fused and unfused models share one checkpoint layout.
#include <gtest/gtest.h>

#include <filesystem>

#include "strata/core/error.h"
#include "strata/model/checkpoint.h"
#include "strata/model/layer_specs.h"
#include "test_util.h"

namespace strata {
namespace {

std::shared_ptr<LanguageModel> model_from_pattern(const std::string& pattern, uint64_t seed) {
  auto config = testing::small_config();
  config->hybrid_layer_pattern = pattern;
  config->num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  at::manual_seed(seed);
  return std::make_shared<LanguageModel>(config, decoder_spec(default_layer_registry(LocalBackend{}, *config), *config));
}


TEST(CanonicalCheckpoint, FusedModelNamesTensorsAsIfUnfused) {
  auto fused = model_from_pattern("[*-][*-]", 1);
  std::vector<std::string> names;
  for (const auto& [name, _] : fused->canonical_state_dict()) names.push_back(name);
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  EXPECT_TRUE(has("decoder.layers.0.self_attention.linear_qkv.weight"));
  EXPECT_TRUE(has("decoder.layers.1.mlp.linear_fc1.weight"));
  EXPECT_TRUE(has("decoder.layers.1.pre_mlp_layernorm.weight"));
  EXPECT_TRUE(has("decoder.layers.2.input_layernorm.weight"));
  EXPECT_TRUE(has("decoder.layers.3.mlp.linear_fc2.weight"));
  EXPECT_FALSE(has("decoder.layers.0.mlp.linear_fc1.weight"));
}

TEST(CanonicalCheckpoint, FusedAndUnfusedLoadEachOther) {
  auto fused = model_from_pattern("[*-][*-]", 1);
  auto unfused = model_from_pattern("*-*-", 2);
  auto input = at::randint(0, 64, {2, 9});
  for (auto [from, to] : {std::pair{fused, unfused}, std::pair{unfused, fused}}) {
    auto dir = testing::fresh_temp_dir("test_fusion");
    save_model_weights(*from, dir);
    load_model_weights(*to, dir);
    auto a = from->canonical_state_dict(), b = to->canonical_state_dict();
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, tensor] : a) {
      ASSERT_TRUE(b.count(name)) << name;
      EXPECT_TRUE(at::equal(tensor, b.at(name))) << name;
    }
    EXPECT_TRUE(at::equal(from->forward(input), to->forward(input)));
    std::filesystem::remove_all(dir);
  }
}

TEST(CanonicalCheckpoint, BadCheckpointsListEveryProblem) {
  auto model = model_from_pattern("[*-][*-]", 1);
  auto tensors = model->canonical_state_dict();
  tensors.erase("decoder.layers.3.mlp.linear_fc2.weight");
  tensors.emplace("decoder.layers.9.mlp.linear_fc2.weight", at::zeros({2}));
  tensors["decoder.final_layernorm.weight"] = at::zeros({31});
  try {
    model->load_canonical_state_dict(tensors, "test checkpoint");
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot load test checkpoint"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing tensors (1):\n    decoder.layers.3.mlp.linear_fc2.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected tensors (1):\n    decoder.layers.9.mlp.linear_fc2.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("decoder.final_layernorm.weight (checkpoint [31], model [32])"), std::string::npos) << msg;
  }
}

TEST(HybridModel, PatternLayersRunForwardAndBackward) {
  for (const char* pattern : {"*-*-", "[*-][*-]", "**--", "[*-]|*-", "-*"}) {
    auto model = model_from_pattern(pattern, 3);
    auto input = at::randint(0, 64, {2, 6});
    auto logits = model->forward(input);
    EXPECT_EQ(logits.sizes(), (at::IntArrayRef{2, 6, 64})) << pattern;
    logits.square().mean().backward();
    for (const auto& [name, p] : model->canonical_state_dict()) {
      ASSERT_TRUE(p.grad().defined()) << pattern << " " << name;
      EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0) << pattern << " " << name;
    }
  }
}

// Every symbol of the pattern language, in two models ('*' may not share one with MLA or DSA):
// each kind builds from its symbol, runs forward and backward, and every parameter receives a
// gradient.
class EveryPatternSymbol : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryPatternSymbol, BuildsAndLearns) {
  auto config = testing::small_config();
  config->hybrid_layer_pattern = GetParam();
  config->num_layers = parse_layer_pattern(config->hybrid_layer_pattern).num_canonical_layers();
  config->linear_key_head_dim = 8;
  config->linear_value_head_dim = 8;
  config->linear_num_key_heads = 2;
  config->linear_num_value_heads = 4;
  config->mamba_num_heads = 4;
  config->mamba_head_dim = 8;
  config->mamba_state_dim = 4;
  config->mamba_num_groups = 2;
  config->q_lora_rank = 12;
  config->kv_lora_rank = 10;
  config->qk_head_dim = 6;
  config->qk_pos_emb_head_dim = 4;
  config->v_head_dim = 5;
  config->dsa_indexer_n_heads = 2;
  config->dsa_indexer_head_dim = 8;
  config->dsa_indexer_topk = 3;
  config->num_moe_experts = 4;
  config->moe_ffn_hidden_size = 16;
  at::manual_seed(7);
  auto model = std::make_shared<LanguageModel>(config, decoder_spec(default_layer_registry(LocalBackend{}, *config), *config));
  auto logits = model->forward(at::randint(0, 64, {2, 6}));
  EXPECT_EQ(logits.sizes(), (at::IntArrayRef{2, 6, 64}));
  logits.square().mean().backward();
  for (const auto& [name, p] : model->canonical_state_dict()) {
    // The DSA indexer learns from its own KL loss during training, not from the logits.
    if (name.find(".indexer.") != std::string::npos) continue;
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(TwoModels, EveryPatternSymbol, ::testing::Values("[*-]G-M-E", "[+E]D-M-G-"));

// A registry is the extension point for new kinds; a pattern that names a kind the registry
// lacks is rejected when the spec is built, naming the symbol and listing what can be built.
TEST(HybridModel, KindsMissingFromTheRegistryAreRejectedAtBuildTime) {
  auto config = testing::small_config();
  LayerRegistry registry(configured_norm(LocalBackend{}));
  registry.set(SequenceMixerKind::Attention, SelfAttention::builder(self_attention_submodules(LocalBackend{}, true)));
  registry.set(ChannelMixerKind::Mlp, Mlp::as_mlp_submodule(mlp_submodules(LocalBackend{})));
  for (auto [pattern, symbol] : {std::pair{"M-", "'M' (Mamba2)"}, {"*E", "'E' (MoE)"}, {"+-", "'+' (multi-latent attention)"}}) {
    config->hybrid_layer_pattern = pattern;
    try {
      decoder_spec(registry, *config);
      ADD_FAILURE() << pattern << " was built";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string("layer pattern symbol ") + symbol + " cannot be built yet"), std::string::npos) << msg;
      EXPECT_NE(msg.find("(available: '*' attention, '-' MLP)"), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace strata
