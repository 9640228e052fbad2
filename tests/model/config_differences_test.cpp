// Which config differences change the model: the layers (fused or not), and the fields its layers
// read; not the fields of layers it lacks, nor training settings.
#include "strata/model/config_differences.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata {
namespace {

std::vector<std::string> fields_of(const std::vector<ConfigDifference>& differences) {
  std::vector<std::string> fields;
  for (const auto& d : differences) fields.push_back(d.field);
  return fields;
}

TEST(ModelDifferences, FusionAndTrainingSettingsDoNotChangeTheModel) {
  auto gpt = *testing::small_config();  // two attention + MLP layers, no pattern
  auto unfused = gpt;
  unfused.hybrid_layer_pattern = "*-*-";
  unfused.num_layers = 4;
  unfused.hidden_dropout = 0.1;
  unfused.init_method_std = 0.5;
  unfused.mamba_state_dim = 3;       // no Mamba2 layer reads it
  unfused.num_moe_experts = 8;       // nor a MoE layer this
  unfused.linear_key_head_dim = 99;  // nor a Gated DeltaNet layer this
  EXPECT_TRUE(model_differences(gpt, unfused).empty()) << ::testing::PrintToString(fields_of(model_differences(gpt, unfused)));
  EXPECT_EQ(canonical_layer_symbols(gpt), "*-*-");
  EXPECT_EQ(canonical_layer_symbols(unfused), "*-*-");
}

TEST(ModelDifferences, NamesEveryFieldTheLayersReadAndTheLayers) {
  auto a = *testing::small_config();
  auto b = a;
  b.qk_layernorm = false;
  b.rotary_percent = 0.5;
  b.mtp_num_layers = 1;
  const auto differences = model_differences(a, b);
  EXPECT_EQ(fields_of(differences), (std::vector<std::string>{"layers", "qk_layernorm", "rotary_percent"}));
  EXPECT_EQ(differences[0].ours, "\"*-*-\"");
  EXPECT_EQ(differences[0].theirs, "\"*-*-/*-\"");
  EXPECT_EQ(differences[1].ours, "true");
  EXPECT_EQ(differences[1].theirs, "false");

  // A Mamba2 layer reads the mamba_* fields; softmax attention's fields then matter only with a '*'.
  auto mamba = a;
  testing::use_small_hybrid_mixers(mamba);
  mamba.hybrid_layer_pattern = "M-M-";
  mamba.num_layers = 4;
  auto other = mamba;
  other.mamba_state_dim = 32;
  other.qk_layernorm = false;
  EXPECT_EQ(fields_of(model_differences(mamba, other)), std::vector<std::string>{"mamba_state_dim"});
}

}  // namespace
}  // namespace strata
