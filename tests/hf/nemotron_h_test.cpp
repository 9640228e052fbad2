// Nemotron-H (Mamba2 + attention + squared-ReLU MLP layers) built from typed specs against HF
// (tests/fixtures/hf/nemotron_h): config conversion, the tensor map both ways, and hf-check.
#include "strata/hf/nemotron_h.h"

#include <gtest/gtest.h>

#include <limits>

#include "strata/core/error.h"
#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"
#include "test_util.h"

namespace strata::hf {
namespace {

io::NemotronHConfig fixture_config() {
  return std::get<io::NemotronHConfig>(io::read_hf_config(testing::fixture("nemotron_h") + "/model/config.json"));
}

std::string conversion_error(const io::NemotronHConfig& hf) {
  try {
    nemotron_h_transformer_config(hf);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(HfNemotronH, ConvertsTheConfig) {
  const auto c = nemotron_h_transformer_config(fixture_config());
  EXPECT_EQ(c.hybrid_layer_pattern, "M-*-M-");
  EXPECT_EQ(c.num_layers, 6);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.layernorm_epsilon, 1e-5);
  EXPECT_FALSE(c.share_embeddings_and_output_weights);
  // Attention: 4 query heads in 2 groups of head_dim 16, no position encoding.
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_query_groups, 2);
  EXPECT_EQ(c.kv_channels, 16);
  EXPECT_EQ(c.position_embedding_type, PositionEmbeddingType::None);
  EXPECT_FALSE(c.qk_layernorm);
  // MLP: relu2 without a gate.
  EXPECT_EQ(c.ffn_hidden_size, 128);
  EXPECT_FALSE(c.gated_linear_unit);
  EXPECT_EQ(c.activation_func, Activation::SquaredReLU);
  EXPECT_FALSE(c.add_bias_linear);
  // Mamba2.
  EXPECT_EQ(c.mamba_heads(), 8);
  EXPECT_EQ(c.mamba_head_dim, 16);
  EXPECT_EQ(c.mamba_state_dim, 16);
  EXPECT_EQ(c.mamba_num_groups, 2);
  EXPECT_EQ(c.mamba_chunk_size, 32);
  EXPECT_EQ(c.mamba_conv_kernel_dim, 4);
  EXPECT_TRUE(c.mamba_conv_bias);
  EXPECT_FALSE(c.mamba_proj_bias);
  EXPECT_EQ(c.mamba_time_step_min, 0.001);
  EXPECT_EQ(c.mamba_time_step_max, 0.1);
  EXPECT_EQ(c.mamba_time_step_floor, 1e-4);
  EXPECT_EQ(c.mamba_time_step_limit_min, 0.001);  // time_step_min, where HF's PyTorch path clamps dt
  EXPECT_EQ(c.mamba_time_step_limit_max, std::numeric_limits<double>::infinity());
}

TEST(HfNemotronH, RejectsWhatItCannotBuildNamingTheField) {
  auto moe = fixture_config();
  moe.layers_block_type[3] = "moe";
  EXPECT_NE(conversion_error(moe).find("layers_block_type[3] is \"moe\", which strata cannot build yet"),
            std::string::npos)
      << conversion_error(moe);
  auto act = fixture_config();
  act.mamba_hidden_act = "gelu";
  EXPECT_NE(conversion_error(act).find("mamba_hidden_act = \"gelu\" is not supported"), std::string::npos)
      << conversion_error(act);
  auto mlp = fixture_config();
  mlp.mlp_hidden_act = "tanh";
  EXPECT_NE(conversion_error(mlp).find("mlp_hidden_act: unknown activation 'tanh'"), std::string::npos)
      << conversion_error(mlp);
}

TEST(HfNemotronH, MatchesLogitsLossAndEveryGradient) {
  auto result = hf_check(testing::fixture("nemotron_h"), testing::test_device());
  EXPECT_EQ(result.model_type, "nemotron_h");
  EXPECT_LE(result.logits_rel, 1e-4);
  EXPECT_LE(result.loss_abs, 1e-5);
  EXPECT_LE(result.grad_rel_max, 1e-3) << result.grad_rel.front().first;
  EXPECT_EQ(result.grad_rel.size(), 35u);  // every HF parameter has its gradient compared
  EXPECT_TRUE(result.pass);
}

TEST(HfNemotronH, ExportRoundTripsTheCheckpoint) {
  auto dir = testing::fixture("nemotron_h") + "/model";
  auto hf = load_hf_model(dir);
  auto exported = hf.tensor_map.export_hf(hf.model->canonical_state_dict());
  auto original = io::CheckpointReader::open(dir);
  ASSERT_EQ(exported.size(), original.names().size());
  for (const auto& [name, tensor] : exported) EXPECT_TRUE(at::equal(tensor, original.load(name))) << name;
}

TEST(HfNemotronH, GradientsGoByHfModuleNames) {
  auto map = nemotron_h_tensor_map(nemotron_h_transformer_config(fixture_config()));
  std::map<std::string, at::Tensor> tensors;
  for (const auto& rule : map.rules()) tensors.emplace(rule.name, at::zeros({1}));
  tensors["decoder.layers.2.self_attention.linear_qkv.weight"] = at::zeros({(4 + 2 * 2) * 16, 64});
  auto runtime = map.export_runtime(tensors);
  EXPECT_TRUE(runtime.count("model.layers.0.mixer.A_log"));
  EXPECT_TRUE(runtime.count("model.layers.2.mixer.k_proj.weight"));
  EXPECT_TRUE(runtime.count("model.embeddings.weight"));
  EXPECT_TRUE(runtime.count("model.norm_f.weight"));
  EXPECT_TRUE(runtime.count("lm_head.weight"));
  for (const auto& [name, _] : runtime) EXPECT_NE(name.rfind("backbone.", 0), 0u) << name;
}

TEST(HfNemotronH, TensorMapRoundTripsAModelWithProjectionBiasesAndNoConvBias) {
  auto hf_config = fixture_config();
  hf_config.use_bias = true;
  hf_config.use_conv_bias = false;
  hf_config.tie_word_embeddings = true;
  auto hf = build_hf_model(hf_config);
  auto canonical = hf.model->canonical_state_dict();
  auto exported = hf.tensor_map.export_hf(canonical);
  EXPECT_TRUE(exported.count("backbone.layers.4.mixer.in_proj.bias"));
  EXPECT_TRUE(exported.count("backbone.layers.4.mixer.out_proj.bias"));
  EXPECT_FALSE(exported.count("backbone.layers.4.mixer.conv1d.bias"));
  EXPECT_FALSE(exported.count("lm_head.weight"));
  std::vector<std::string> names;
  for (const auto& [name, _] : exported) names.push_back(name);
  auto imported = hf.tensor_map.import([&](const std::string& name) { return exported.at(name); }, names, "export");
  ASSERT_EQ(imported.size(), canonical.size());
  for (const auto& [name, tensor] : canonical) EXPECT_TRUE(at::equal(imported.at(name), tensor)) << name;
}

}  // namespace
}  // namespace strata::hf
