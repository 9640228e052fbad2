// Gated DeltaNet-2 in a model: the gdn2 variant accepted where Megatron accepts it, 'G' and
// linear_attention_freq's layers built as GDN2 with Megatron's parameter names, the parameter
// count as built, and HF export refused (GDN2 has no HF model).
#include <gtest/gtest.h>

#include <set>

#include "strata/hf/export.h"
#include "strata/hf/qwen3_next.h"
#include "strata/model/build_model.h"
#include "strata/model/layer_allocation.h"
#include "strata/model/parameter_count.h"
#include "test_util.h"

namespace strata {
namespace {

using testing::error_of;

TransformerConfig gdn2_hybrid(const std::string& pattern) {
  auto c = *testing::small_config();
  testing::use_small_hybrid_mixers(c);
  c.linear_num_value_heads = 4;  // two value heads per key head
  c.experimental_attention_variant = "gdn2";
  c.hybrid_layer_pattern = pattern;
  c.num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  return c;
}

TEST(GatedDeltaNet2Config, Gdn2IsAcceptedAndPlacesLinearAttentionLayers) {
  TransformerConfig c;
  c.num_layers = 4;
  c.experimental_attention_variant = "gdn2";
  c.linear_attention_freq = {.every = 2};
  const auto resolved = resolve_layer_settings(c);
  EXPECT_EQ(resolved.config.experimental_attention_variant, "gdn2");
  EXPECT_EQ(resolved.pattern.layers_text(), "[G-][*-][G-][*-]");
}

// Megatron asserts linear_attention_freq for gdn only: gdn2 may just turn a pattern's 'G's into
// GDN2. Without a pattern the frequency is what places the layers.
TEST(GatedDeltaNet2Config, Gdn2NeedsAFrequencyOnlyWithoutAPattern) {
  auto with_pattern = gdn2_hybrid("G-*-");
  EXPECT_EQ(resolve_layer_settings(with_pattern).pattern.layers_text(), "G-*-");
  TransformerConfig c;
  c.num_layers = 2;
  c.experimental_attention_variant = "gdn2";
  EXPECT_EQ(error_of([&] { resolve_layer_settings(c); }),
            "TransformerConfig.experimental_attention_variant = 'gdn2' without a hybrid_layer_pattern needs "
            "linear_attention_freq (which layers are Gated DeltaNet-2)");
  c.experimental_attention_variant = "gdn3";
  EXPECT_EQ(error_of([&] { resolve_layer_settings(c); }),
            "TransformerConfig.experimental_attention_variant = 'gdn3': expected gdn, gdn2, dsa, gated_delta_net (an "
            "alias of gdn) or none");
}

TEST(GatedDeltaNet2Model, GLayersHoldMegatronsGdn2Parameters) {
  auto c = gdn2_hybrid("G-*-G-");
  auto model = build_language_model(std::make_shared<const TransformerConfig>(c));
  auto state = model->canonical_state_dict();
  const auto keys = c.linear_num_key_heads * c.linear_key_head_dim;      // 16
  const auto values = c.linear_num_value_heads * c.linear_value_head_dim;  // 48
  const std::map<std::string, std::vector<int64_t>> expected{
      {"in_proj.weight", {4 * keys + 3 * values, c.hidden_size}},
      {"conv1d.weight", {2 * keys + values, 1, c.linear_conv_kernel_dim}},
      {"dt_bias", {keys}},
      {"A_log", {c.linear_num_key_heads}},
      {"out_norm.weight", {c.linear_value_head_dim}},
      {"out_proj.weight", {c.hidden_size, values}}};
  for (int layer : {0, 4}) {
    for (const auto& [name, shape] : expected) {
      const auto full = cat("decoder.layers.", layer, ".self_attention.", name);
      ASSERT_TRUE(state.count(full)) << full;
      EXPECT_EQ(state.at(full).sizes().vec(), shape) << full;
    }
  }
}

TEST(GatedDeltaNet2Model, ParameterCountIsWhatTheModelHolds) {
  for (const auto& pattern : {"G-*-G-", "[G-][*E]M-G-", "G-G-/G-"}) {
    auto c = gdn2_hybrid(pattern);
    if (std::string(pattern).find('E') != std::string::npos) {
      c.num_moe_experts = 4;
      c.moe_ffn_hidden_size = 16;
    }
    auto model = build_language_model(std::make_shared<const TransformerConfig>(c));
    std::set<const void*> buffers;
    for (const auto& buffer : model->buffers()) buffers.insert(buffer.data_ptr());
    int64_t held = 0;
    for (const auto& [name, tensor] : model->canonical_state_dict())
      if (!buffers.count(tensor.data_ptr())) held += tensor.numel();
    EXPECT_EQ(count_parameters(c, resolve_layer_pattern(c)).total(), held) << pattern;
  }
}

TEST(GatedDeltaNet2Model, HfExportIsRefusedNamingGdn2) {
  auto c = gdn2_hybrid("[G-][*-]");
  c.hybrid_layer_pattern = "[G-][*-]";
  EXPECT_NE(error_of([&] { hf::qwen3_next_hf_config(c); })
                .find("qwen3_next: the 'G' layers are Gated DeltaNet-2 (experimental_attention_variant gdn2), which "
                      "has no HF model"),
            std::string::npos);
  EXPECT_NE(error_of([&] { hf::plan_hf_export(c, hf::hf_config_extras(c, at::kFloat)); }).find("gdn2"),
            std::string::npos);
}

}  // namespace
}  // namespace strata
