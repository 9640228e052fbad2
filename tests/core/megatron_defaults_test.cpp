// TransformerConfig's defaults are Megatron-Core's under the same names, sizes left unset are
// derived as Megatron derives them, and the recompute fields are checked as Megatron checks them.
#include <gtest/gtest.h>

#include "strata/core/config.h"
#include "strata/core/config_json.h"
#include "test_util.h"

namespace strata {
namespace {

TEST(MegatronDefaults, FieldsDefaultAsInMegatronCore) {
  const TransformerConfig c;
  // TransformerConfig.
  EXPECT_EQ(c.normalization, Normalization::LayerNorm);
  EXPECT_EQ(c.layernorm_epsilon, 1e-5);
  EXPECT_TRUE(c.add_bias_linear);
  EXPECT_FALSE(c.add_qkv_bias);
  EXPECT_FALSE(c.gated_linear_unit);
  EXPECT_EQ(c.activation_func, Activation::GELU);
  EXPECT_EQ(c.hidden_dropout, 0.1);
  EXPECT_EQ(c.attention_dropout, 0.1);
  EXPECT_EQ(c.init_method_std, 0.02);
  EXPECT_FALSE(c.fp32_residual_connection);
  EXPECT_FALSE(c.qk_layernorm);
  EXPECT_EQ(c.rotary_base, 10000.0);
  EXPECT_EQ(c.rotary_percent, 1.0);
  EXPECT_EQ(c.linear_conv_kernel_dim, 4);
  EXPECT_EQ(c.linear_key_head_dim, 128);
  EXPECT_EQ(c.linear_value_head_dim, 128);
  EXPECT_EQ(c.linear_num_key_heads, 16);
  EXPECT_EQ(c.linear_num_value_heads, 32);
  EXPECT_EQ(c.mamba_state_dim, 128);
  EXPECT_EQ(c.mamba_head_dim, 64);
  EXPECT_EQ(c.mamba_num_groups, 8);
  EXPECT_EQ(c.mamba_num_heads, 0);  // None
  EXPECT_EQ(c.moe_router_topk, 2);
  EXPECT_EQ(c.moe_aux_loss_coeff, 0.0);
  EXPECT_EQ(c.moe_router_score_function, "softmax");
  EXPECT_FALSE(c.enable_mhc_connections);
  EXPECT_EQ(c.mhc_num_residual_streams, 4);
  EXPECT_EQ(c.mhc_sinkhorn_iterations, 20);
  EXPECT_EQ(c.mhc_init_gating_factor, 0.01);
  EXPECT_EQ(c.mhc_recompute_layer_num, 0);  // None
  EXPECT_EQ(c.recompute_granularity, "");
  EXPECT_EQ(c.recompute_modules, (std::vector<std::string>{"core_attn"}));
  // MLATransformerConfig.
  EXPECT_EQ(c.q_lora_rank, 512);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_head_dim, 128);
  EXPECT_EQ(c.qk_pos_emb_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  // GPTModel's arguments.
  EXPECT_EQ(c.position_embedding_type, PositionEmbeddingType::LearnedAbsolute);
  EXPECT_TRUE(c.share_embeddings_and_output_weights);
}

TransformerConfig sized(int64_t hidden, int64_t heads) {
  TransformerConfig c;
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  return c;
}

TEST(MegatronDefaults, UnsetSizesAreDerivedAsMegatronDerivesThem) {
  auto c = sized(1024, 16);
  derive_unset_fields(c);
  EXPECT_EQ(c.ffn_hidden_size, 4096);
  EXPECT_EQ(c.kv_channels, 64);
  EXPECT_EQ(c.num_query_groups, 16);
  EXPECT_EQ(c.moe_ffn_hidden_size, 0);  // no experts
  // --swiglu: 8/3 of the width, rounded down to a multiple of 64 (int((4 * 1000 * 2 / 3) / 64) * 64).
  auto swiglu = sized(1000, 8);
  swiglu.gated_linear_unit = true;
  swiglu.activation_func = Activation::SiLU;
  swiglu.num_moe_experts = 4;
  derive_unset_fields(swiglu);
  EXPECT_EQ(swiglu.ffn_hidden_size, 2624);
  EXPECT_EQ(swiglu.kv_channels, 125);
  EXPECT_EQ(swiglu.moe_ffn_hidden_size, 2624);
  // Sizes that are set stay.
  auto given = sized(64, 4);
  given.ffn_hidden_size = 100;
  given.kv_channels = 8;
  given.num_query_groups = 2;
  derive_unset_fields(given);
  EXPECT_EQ(given.ffn_hidden_size, 100);
  EXPECT_EQ(given.kv_channels, 8);
  EXPECT_EQ(given.num_query_groups, 2);
  EXPECT_EQ(testing::error_of([] {
              auto odd = sized(100, 3);
              derive_unset_fields(odd);
            }),
            "TransformerConfig.kv_channels unset: derived as hidden_size / num_attention_heads, but hidden_size = "
            "100 is not a positive multiple of num_attention_heads = 3; set kv_channels");
}

TransformerConfig valid() {
  auto c = *testing::small_config();
  c.enable_mhc_connections = true;
  return c;
}

TEST(MegatronDefaults, LearnedPositionsNeedTheirTableSize) {
  auto c = valid();
  c.position_embedding_type = PositionEmbeddingType::LearnedAbsolute;
  EXPECT_EQ(testing::error_of([&] { validate(c); }),
            "TransformerConfig.max_position_embeddings (the rows of learned_absolute's table) = 0: expected a "
            "positive value");
  c.max_position_embeddings = 128;
  EXPECT_NO_THROW(validate(c));
  EXPECT_EQ(testing::error_of([] { parse_position_embedding_type("yarn", "model.json"); }),
            "model.json: unknown position embedding type 'yarn' (expected learned_absolute, rope or none)");
}

TEST(MegatronDefaults, RecomputeFieldsAreCheckedAsMegatronChecksThem) {
  auto with = [](const std::function<void(TransformerConfig&)>& change) {
    auto c = valid();
    change(c);
    return testing::error_of([&] { validate(c); });
  };
  EXPECT_EQ(with([](auto& c) { c.recompute_granularity = "partial"; }),
            "TransformerConfig.recompute_granularity = 'partial': expected full, selective or empty (none)");
  EXPECT_EQ(with([](auto& c) {
              c.recompute_granularity = "selective";
              c.recompute_method = "uniform";
            }),
            "TransformerConfig.recompute_method = 'uniform': applies to recompute_granularity full, not 'selective'");
  EXPECT_EQ(with([](auto& c) {
              c.recompute_granularity = "full";
              c.recompute_method = "uniform";
            }),
            "TransformerConfig.recompute_num_layers = 0: recompute_method uniform recomputes groups of this many "
            "layers; expected at least 1");
  EXPECT_EQ(with([](auto& c) {
              c.recompute_granularity = "full";
              c.recompute_num_layers = 2;
            }),
            "TransformerConfig.recompute_num_layers = 2: needs recompute_method uniform or block "
            "(recompute_granularity full)");
  // Megatron's default modules (core_attn) under selective recompute: not implemented here.
  EXPECT_EQ(with([](auto& c) { c.recompute_granularity = "selective"; }),
            "TransformerConfig.recompute_modules holds 'core_attn': strata recomputes only 'mhc' selectively (use "
            "recompute_granularity full for whole layers)");
  auto mhc = valid();
  mhc.recompute_granularity = "selective";
  mhc.recompute_modules = {"mhc"};
  EXPECT_NO_THROW(validate(mhc));
  EXPECT_TRUE(mhc.recomputes_mhc());
  auto block = valid();
  block.recompute_granularity = "full";
  block.recompute_method = "block";
  block.recompute_num_layers = 1;
  EXPECT_NO_THROW(validate(block));
  EXPECT_FALSE(block.recomputes_mhc());
}

TEST(MegatronDefaults, FormerFieldNamesReadAsTheirReplacements) {
  const auto c = config_from_json(
      {{"enable_hyper_connections", true}, {"num_residual_streams", 3}, {"mhc_recompute_num_layers", 2}}, "old.json");
  EXPECT_TRUE(c.enable_mhc_connections);
  EXPECT_EQ(c.mhc_num_residual_streams, 3);
  EXPECT_EQ(c.recompute_granularity, "selective");
  EXPECT_EQ(c.recompute_modules, (std::vector<std::string>{"mhc"}));
  const auto none = config_from_json({{"mhc_recompute_num_layers", 0}}, "old.json");
  EXPECT_EQ(none.recompute_granularity, "");
  const auto written = to_json(c);
  EXPECT_FALSE(written.contains("enable_hyper_connections"));
  EXPECT_EQ(written["mhc_num_residual_streams"], 3);
  EXPECT_EQ(testing::error_of([] {
              config_from_json({{"num_residual_streams", 3}, {"mhc_num_residual_streams", 4}}, "both.json");
            }),
            "both.json: fields 'num_residual_streams' (strata's former name) and 'mhc_num_residual_streams' both "
            "given; keep 'mhc_num_residual_streams'");
}

TEST(MegatronDefaults, NullIsUnsetAsInAMegatronConfig) {
  const auto c = config_from_json({{"ffn_hidden_size", nullptr},
                                   {"kv_channels", nullptr},
                                   {"num_query_groups", nullptr},
                                   {"q_lora_rank", nullptr},
                                   {"moe_router_topk_scaling_factor", nullptr},
                                   {"recompute_granularity", nullptr},
                                   {"recompute_modules", nullptr}},
                                  "megatron.json");
  EXPECT_EQ(c.ffn_hidden_size, 0);
  EXPECT_EQ(c.kv_channels, 0);
  EXPECT_EQ(c.num_query_groups, 0);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.moe_router_topk_scaling_factor, 1.0);
  EXPECT_EQ(c.recompute_granularity, "");
  EXPECT_EQ(c.recompute_modules, (std::vector<std::string>{"core_attn"}));
  EXPECT_EQ(config_from_json({{"position_embedding_type", "none"}}, "x").position_embedding_type,
            PositionEmbeddingType::None);
}

TEST(MegatronDefaults, ACheckpointWithoutPositionEmbeddingTypeBuiltRope) {
  auto json = to_json(*testing::small_config());
  json.erase("position_embedding_type");
  EXPECT_EQ(saved_config_from_json(json, "state.json").position_embedding_type, PositionEmbeddingType::Rope);
  EXPECT_EQ(config_from_json(json, "model.json").position_embedding_type, PositionEmbeddingType::LearnedAbsolute);
}

}  // namespace
}  // namespace strata
