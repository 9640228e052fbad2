// The parameter count from a config equals what the built model holds, for every kind of layer
// and the options that add parameters (biases, LayerNorm, gates, shared experts, mHC, tied
// embeddings); per kind, it is what that kind's layers hold.
#include "strata/model/parameter_count.h"

#include <gtest/gtest.h>

#include <set>

#include "strata/model/build_model.h"
#include "strata/model/layer_allocation.h"
#include "test_util.h"

namespace strata {
namespace {

TransformerConfig every_kind(const std::string& pattern) {
  auto c = *testing::small_config();
  c.hybrid_layer_pattern = pattern;
  if (!pattern.empty()) c.num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  c.linear_key_head_dim = 8;
  c.linear_value_head_dim = 8;
  c.linear_num_key_heads = 2;
  c.linear_num_value_heads = 4;
  c.mamba_num_heads = 4;
  c.mamba_head_dim = 8;
  c.mamba_state_dim = 4;
  c.mamba_num_groups = 2;
  c.q_lora_rank = 12;
  c.kv_lora_rank = 10;
  c.qk_head_dim = 6;
  c.qk_pos_emb_head_dim = 4;
  c.v_head_dim = 5;
  c.dsa_indexer_n_heads = 2;
  c.dsa_indexer_head_dim = 8;
  c.dsa_indexer_topk = 3;
  c.num_moe_experts = 4;
  c.moe_ffn_hidden_size = 16;
  return c;
}

// The canonical tensors that are parameters: buffers (the router's expert bias, which balancing
// updates and no gradient trains) are not counted.
int64_t parameters_of(LanguageModel& model, const std::string& prefix = "") {
  std::set<const void*> buffers;
  for (const auto& buffer : model.buffers()) buffers.insert(buffer.data_ptr());
  int64_t count = 0;
  for (const auto& [name, tensor] : model.canonical_state_dict())
    if (name.rfind(prefix, 0) == 0 && !buffers.count(tensor.data_ptr())) count += tensor.numel();
  return count;
}

int64_t built(const TransformerConfig& c) {
  return parameters_of(*build_language_model(std::make_shared<const TransformerConfig>(c)));
}

int64_t counted(const TransformerConfig& c) { return count_parameters(c, resolve_layer_pattern(c)).total(); }

// '*' may not share a model with MLA or DSA: two models cover the seven symbols, and their MTP
// depths after '/'.
const std::vector<std::string> kEveryKind = {"[*-]G-M-E/*E/*E", "[+E]D-M-G-/D-"};

struct Variant {
  std::string name;
  std::function<void(TransformerConfig&)> change;
  std::vector<std::string> patterns = kEveryKind;
};

void PrintTo(const Variant& v, std::ostream* out) { *out << v.name; }

class ParameterCountMatchesTheBuiltModel : public ::testing::TestWithParam<Variant> {};

TEST_P(ParameterCountMatchesTheBuiltModel, ForEveryKind) {
  for (const auto& pattern : GetParam().patterns) {
    auto c = every_kind(pattern);
    GetParam().change(c);
    EXPECT_EQ(counted(c), built(c)) << pattern;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Options, ParameterCountMatchesTheBuiltModel,
    ::testing::Values(
        Variant{"defaults", [](TransformerConfig&) {}},
        Variant{"layer_norm_and_no_qk_norm",
                [](TransformerConfig& c) {
                  c.normalization = Normalization::LayerNorm;
                  c.qk_layernorm = false;
                }},
        Variant{"qkv_bias_and_output_gate",
                [](TransformerConfig& c) {
                  c.add_qkv_bias = true;
                  c.attention_output_gate = true;
                }},
        // Experts refuse add_bias_linear: these models have none.
        Variant{"linear_biases", [](TransformerConfig& c) { c.add_bias_linear = true; }, {"[*-]G-M-/*-", "+-D-M-G-"}},
        Variant{"mamba_biases_and_plain_mlp",
                [](TransformerConfig& c) {
                  c.mamba_proj_bias = true;
                  c.mamba_conv_bias = false;
                  c.gated_linear_unit = false;
                }},
        Variant{"shared_expert_with_gate",
                [](TransformerConfig& c) {
                  c.moe_shared_expert_intermediate_size = 24;
                  c.moe_shared_expert_gate = true;
                }},
        // DSA's indexer reads the query latent: only MLA goes without.
        Variant{"queries_without_latent", [](TransformerConfig& c) { c.q_lora_rank = 0; }, {"[+E]M-G-"}},
        // MTP beside mHC is refused: these models have no '/'.
        Variant{"hyper_connections_and_tied_embeddings",
                [](TransformerConfig& c) {
                  c.enable_mhc_connections = true;
                  c.mhc_num_residual_streams = 3;
                  c.share_embeddings_and_output_weights = true;
                },
                {"[*-]G-M-E", "[+E]D-M-G-"}},
        // GPT-style MTP: each depth a copy of the last layer.
        Variant{"mtp_num_layers",
                [](TransformerConfig& c) {
                  c.hybrid_layer_pattern.clear();
                  c.num_layers = 2;
                  c.mtp_num_layers = 2;
                },
                {""}}),
    [](const auto& info) { return info.param.name; });

// DeepSeek-V4's shape: one shared KV head, a query latent, the grouped low-rank output, sliding
// window and both compression rates, the indexer, mHC, sqrtsoftplus-routed MoE with a shared
// expert and its bias (as deepseek_v4_transformer_config sets them).
TransformerConfig deepseek_v4_shaped(const std::string& pattern) {
  auto c = every_kind(pattern);
  c.num_query_groups = 1;
  c.kv_channels = 8;
  c.sliding_window_size = 6;
  c.csa_compress_rate = 4;
  c.hca_compress_rate = 8;
  c.attention_output_groups = 2;
  c.attention_output_lora_rank = 5;
  c.dsa_indexer_head_dim = 6;
  c.enable_mhc_connections = true;
  c.mhc_num_residual_streams = 4;
  c.moe_router_score_function = "sqrtsoftplus";
  c.moe_router_enable_expert_bias = true;
  c.moe_shared_expert_intermediate_size = 16;
  c.activation_func_clamp_value = 10.0;
  return c;
}

TEST(ParameterCount, DeepseekV4AttentionKindsAsBuilt) {
  // Each kind alone, then the three together as DeepSeek-V4 stacks them.
  for (const std::string pattern : {"[WE][WE]", "[CE][CE]", "[HE][HE]", "[WE][CE][HE]", "W-C-H-"}) {
    auto c = deepseek_v4_shaped(pattern);
    EXPECT_EQ(counted(c), built(c)) << pattern;
  }
  // Per kind: each kind's count is what its layers hold, C (compressor and indexer) the most.
  auto c = deepseek_v4_shaped("W-C-H-");
  const auto count = count_parameters(c, resolve_layer_pattern(c));
  auto model = build_language_model(std::make_shared<const TransformerConfig>(c));
  auto layer_params = [&](int layer) { return parameters_of(*model, cat("decoder.layers.", layer, ".")); };
  EXPECT_EQ(count.by_symbol.at('W'), layer_params(0));
  EXPECT_EQ(count.by_symbol.at('C'), layer_params(2));
  EXPECT_EQ(count.by_symbol.at('H'), layer_params(4));
  EXPECT_GT(count.by_symbol.at('C'), count.by_symbol.at('H'));
  EXPECT_GT(count.by_symbol.at('H'), count.by_symbol.at('W'));
}

// A hash-routed MoE (moe_hash_routed_layers) holds the top-k router's weight; its token-id table,
// like the expert bias it replaces, is a buffer.
TEST(ParameterCount, HashRoutedMoeLayersAsBuilt) {
  auto c = deepseek_v4_shaped("[WE][CE][HE]");
  c.moe_hash_routed_layers = {1, 3};
  EXPECT_EQ(counted(c), built(c));
  EXPECT_EQ(counted(c), counted(deepseek_v4_shaped("[WE][CE][HE]")));
}

TEST(ParameterCount, PerKindAsTheKindsLayersHold) {
  auto c = every_kind("[*-]*-");
  const auto count = count_parameters(c, resolve_layer_pattern(c));
  ASSERT_EQ(count.by_symbol.size(), 2u);
  // Attention (32 wide, 4 heads of 8 over 2 groups, q/k norms): its input norm 32, linear_qkv
  // 32 x (4 + 2 * 2) * 8, q and k norms 2 x 8, linear_proj 32 x 32; twice.
  EXPECT_EQ(count.by_symbol.at('*'), 2 * (32 + 32 * 64 + 16 + 32 * 32));
  // MLP (ffn 48, gated): its norm 32, fc1 32 x 96, fc2 48 x 32; twice.
  EXPECT_EQ(count.by_symbol.at('-'), 2 * (32 + 32 * 96 + 48 * 32));
  EXPECT_EQ(count.embedding, 64 * 32);
  EXPECT_EQ(count.output_layer, 64 * 32);
  EXPECT_EQ(count.final_layernorm, 32);
  EXPECT_EQ(count.mtp, 0);
  EXPECT_EQ(count.total(), built(c));
}

TEST(ParameterCount, MtpDepthsWhole) {
  auto c = every_kind("*-/*-");
  const auto count = count_parameters(c, resolve_layer_pattern(c));
  // enorm, hnorm and final_layernorm 3 x 32, eh_proj 64 x 32, and the depth's attention and MLP
  // layers as above.
  EXPECT_EQ(count.mtp, 3 * 32 + 64 * 32 + (32 + 32 * 64 + 16 + 32 * 32) + (32 + 32 * 96 + 48 * 32));
  EXPECT_EQ(count.total(), built(c));
}

}  // namespace
}  // namespace strata
