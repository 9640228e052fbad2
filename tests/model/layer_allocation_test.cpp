// Which layer each position holds, as Megatron-LM decides it: ratios (pattern_from_ratios), the
// GPT-style settings (experimental_attention_variant, the frequencies, experts), and what
// `strata train` / `describe` do to a config first (resolve_layer_settings).
#include "strata/model/layer_allocation.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "strata/core/error.h"
#include "strata/core/layer_frequency.h"
#include "test_util.h"

namespace strata {
namespace {

using testing::error_of;

int64_t count(const std::string& text, char c) { return std::count(text.begin(), text.end(), c); }

// Expected strings computed with Megatron-LM's own pattern_from_ratios (HEAD, Python's rounding).
TEST(PatternFromRatios, MatchesMegatronLayerForLayer) {
  EXPECT_EQ(pattern_from_ratios(8, 0.0, 0.0), "MMMMMMMM");
  EXPECT_EQ(pattern_from_ratios(10, 0.3, 0.0), "MM*MM*M*MM");
  EXPECT_EQ(pattern_from_ratios(10, 0.3, 0.3), "M-*MM*-*M-");
  EXPECT_EQ(pattern_from_ratios(10, 0.5, 0.0), "M*M*M**M*M");
  EXPECT_EQ(pattern_from_ratios(1, 0.0, 0.0), "M");
  EXPECT_EQ(pattern_from_ratios(1, 1.0, 0.0), "*");
  EXPECT_EQ(pattern_from_ratios(4, 0.5, 0.0), "M**M");
  // 10 * 0.25 = 2.5 rounds to 2, as Python's round does.
  EXPECT_EQ(pattern_from_ratios(10, 0.25, 0.25), "MMM*-M*MM-");
  EXPECT_EQ(pattern_from_ratios(3, 0.5, 0.5), "*-*");
  // NVIDIA's examples/mamba/train.sh before the ratios were deprecated: the 8B Nemotron-H pattern.
  EXPECT_EQ(pattern_from_ratios(56, 0.08, 0.5), "M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M-");
}

TEST(PatternFromRatios, CountsAndSpacingAsMegatronTestsThem) {
  const auto with_mlp = pattern_from_ratios(10, 0.3, 0.3);
  EXPECT_EQ(count(with_mlp, '*'), 3);
  EXPECT_EQ(count(with_mlp, '-'), 3);
  EXPECT_EQ(count(with_mlp, 'M'), 4);
  // Gaps between attention layers stay small.
  const auto half = pattern_from_ratios(10, 0.5, 0.0);
  for (size_t i = half.find('*'), next; (next = half.find('*', i + 1)) != std::string::npos; i = next)
    EXPECT_LE(next - i, 3u) << half;
}

TEST(PatternFromRatios, RefusesWhatMegatronAssertsAgainst) {
  EXPECT_NE(error_of([] { pattern_from_ratios(0, 0.1, 0.0); }).find("num_layers = 0: expected a positive value"),
            std::string::npos);
  EXPECT_NE(error_of([] { pattern_from_ratios(4, 0.6, 0.6); }).find("their sum at most 1"), std::string::npos);
}

TransformerConfig gpt(int64_t num_layers) {
  TransformerConfig c;
  c.num_layers = num_layers;
  return c;
}

TEST(PatternFromFrequencies, WithoutSettingsEveryLayerIsDenseAttention) {
  EXPECT_EQ(pattern_from_frequencies(gpt(2)), "[*-][*-]");
}

// Megatron's GDN functional test: 6 layers, --experimental-attention-variant gated_delta_net,
// --linear-attention-freq 3, 32 experts (moe_layer_freq left at its default 1).
TEST(PatternFromFrequencies, GatedDeltaNetWithExpertsAsMegatronsFunctionalTest) {
  auto c = gpt(6);
  c.experimental_attention_variant = "gdn";
  c.linear_attention_freq = {.every = 3};
  c.num_moe_experts = 32;
  EXPECT_EQ(pattern_from_frequencies(c), "[GE][GE][*E][GE][GE][*E]");
}

TEST(PatternFromFrequencies, LinearAttentionFreqOnlyCountsForALinearVariant) {
  auto c = gpt(4);
  c.linear_attention_freq = {.every = 2};
  EXPECT_EQ(pattern_from_frequencies(c), "[*-][*-][*-][*-]");
  c.experimental_attention_variant = "gdn";
  EXPECT_EQ(pattern_from_frequencies(c), "[G-][*-][G-][*-]");
  c.experimental_attention_variant = "gated_delta_net";
  EXPECT_EQ(pattern_from_frequencies(c), "[G-][*-][G-][*-]");
}

TEST(PatternFromFrequencies, MoeLayerFreqCountsOnlyWithExperts) {
  auto c = gpt(4);
  c.moe_layer_freq = {.every = 2};
  EXPECT_EQ(pattern_from_frequencies(c), "[*-][*-][*-][*-]");
  c.num_moe_experts = 4;
  EXPECT_EQ(pattern_from_frequencies(c), "[*E][*-][*E][*-]");
  c.moe_layer_freq = TransformerConfig{}.moe_layer_freq;  // Megatron's default 1: every layer
  EXPECT_EQ(pattern_from_frequencies(c), "[*E][*E][*E][*E]");
}

TEST(PatternFromFrequencies, ListExpressionsGiveOneEntryPerLayer) {
  auto c = gpt(8);
  c.num_moe_experts = 4;
  c.moe_layer_freq = parse_layer_frequency("([0]*3+[1]*5)", "--moe-layer-freq");
  c.experimental_attention_variant = "gdn";
  c.linear_attention_freq = parse_layer_frequency("([1]*3+[0]*1)*2", "--linear-attention-freq");
  EXPECT_EQ(pattern_from_frequencies(c), "[G-][G-][G-][*E][GE][GE][GE][*E]");
}

TEST(PatternFromFrequencies, DsaAndMlaReplaceStandardAttention) {
  auto c = gpt(2);
  c.multi_latent_attention = true;
  EXPECT_EQ(pattern_from_frequencies(c), "[+-][+-]");
  c.experimental_attention_variant = "dsa";
  EXPECT_EQ(pattern_from_frequencies(c), "[D-][D-]");
}

TEST(PatternFromFrequencies, BadListsNameTheFieldAndTheCount) {
  auto c = gpt(3);
  c.experimental_attention_variant = "gdn";
  c.linear_attention_freq = {.explicit_list = {1, 0}};
  EXPECT_EQ(error_of([&] { pattern_from_frequencies(c); }),
            "linear_attention_freq [1,0]: the list has 2 entries, expected one per layer (num_layers = 3)");
  c.linear_attention_freq = {.explicit_list = {1, 2, 0}};
  EXPECT_EQ(error_of([&] { pattern_from_frequencies(c); }),
            "TransformerConfig.linear_attention_freq[1] = 2: expected 0 or 1");
  c.linear_attention_freq = {.every = 0};
  EXPECT_EQ(error_of([&] { pattern_from_frequencies(c); }),
            "TransformerConfig.linear_attention_freq = 0: expected a positive integer N (every N-th layer) or a list");
}

// A num_layers of 10^12 allocated terabytes (std::bad_alloc, or an out-of-memory kill); found by the
// model_config fuzzer.
TEST(PatternFromFrequencies, NumLayersBeyondTheLimitIsRefusedBeforeAllocating) {
  EXPECT_EQ(error_of([] { pattern_from_frequencies(gpt(1'000'000'000'000)); }),
            "TransformerConfig.num_layers = 1000000000000: more than strata's limit of 10000 layers");
  EXPECT_EQ(pattern_from_frequencies(gpt(kMaxLayers)).size(), static_cast<size_t>(4 * kMaxLayers));
}

TEST(ResolveLayerPattern, NumLayersMustMatchInACodeBuiltConfig) {
  auto c = gpt(2);
  c.hybrid_layer_pattern = "[*-][*-]";
  EXPECT_NE(error_of([&] { resolve_layer_pattern(c); }).find("has 4 layers before any '/', but num_layers = 2"),
            std::string::npos);
  c.num_layers = 4;
  EXPECT_EQ(resolve_layer_pattern(c).layers.size(), 2u);
}

TEST(ResolveLayerPattern, AModelNeedsMainDecoderLayers) {
  auto c = gpt(0);
  c.hybrid_layer_pattern = "/MM/MM";
  EXPECT_NE(error_of([&] { resolve_layer_pattern(c); }).find("has no layers before the first '/'"), std::string::npos);
}

TEST(ResolveLayerSettings, ThePatternsCountWinsWithAWarning) {
  auto c = gpt(4);
  c.hybrid_layer_pattern = "M-M-|M-M*-/MM/MM";
  c.mamba_head_dim = 16;
  const auto r = resolve_layer_settings(c);
  EXPECT_EQ(r.config.num_layers, 9);
  EXPECT_EQ(r.pattern.mtp.size(), 2u);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0],
            "hybrid_layer_pattern \"M-M-|M-M*-/MM/MM\" has 9 layers: num_layers = 4 is ignored, as in Megatron (the "
            "pattern's count wins)");
  // Unset (0) takes the count without a word; a resolved config resolves to itself.
  c.num_layers = 0;
  EXPECT_TRUE(resolve_layer_settings(c).warnings.empty());
  EXPECT_TRUE(resolve_layer_settings(r.config).warnings.empty());
}

TEST(ResolveLayerSettings, RatiosBecomeTheirPatternWithADeprecationWarning) {
  auto c = gpt(10);
  c.hybrid_attention_ratio = 0.3;
  c.hybrid_mlp_ratio = 0.3;
  const auto r = resolve_layer_settings(c);
  EXPECT_EQ(r.config.hybrid_layer_pattern, "M-*MM*-*M-");
  EXPECT_EQ(r.config.hybrid_attention_ratio, 0.0);
  EXPECT_EQ(r.config.hybrid_mlp_ratio, 0.0);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0],
            "hybrid_attention_ratio 0.3 and hybrid_mlp_ratio 0.3 are deprecated in Megatron: they give the "
            "hybrid_layer_pattern \"M-*MM*-*M-\"; give that pattern instead");
  c.hybrid_layer_pattern = "M*";
  EXPECT_NE(error_of([&] { resolve_layer_settings(c); })
                .find("cannot be used together with hybrid_attention_ratio or hybrid_mlp_ratio"),
            std::string::npos);
}

TEST(ResolveLayerSettings, IgnoredSettingsAreNamed) {
  auto c = gpt(2);
  c.linear_attention_freq = {.every = 4};
  c.moe_layer_freq = {.every = 2};
  const auto r = resolve_layer_settings(c);
  EXPECT_EQ(r.pattern.layers_text(), "[*-][*-]");
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_EQ(r.warnings[0],
            "linear_attention_freq 4 is ignored: experimental_attention_variant is not set, not gdn, as in Megatron");
  EXPECT_EQ(r.warnings[1],
            "moe_layer_freq 2 is ignored: num_moe_experts is not set, so every layer has a dense MLP, as in Megatron");
}

TEST(ResolveLayerSettings, GatedDeltaNetIsReadAsGdn) {
  auto c = gpt(3);
  c.experimental_attention_variant = "gated_delta_net";
  c.linear_attention_freq = {.every = 3};
  const auto r = resolve_layer_settings(c);
  EXPECT_EQ(r.config.experimental_attention_variant, "gdn");
  EXPECT_EQ(r.pattern.layers_text(), "[G-][G-][*-]");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0], "experimental_attention_variant 'gated_delta_net' is deprecated in Megatron: read as 'gdn'");
}

TEST(ResolveLayerSettings, VariantsMegatronRefusesOrStrataLacksAreRefused) {
  auto c = gpt(2);
  c.experimental_attention_variant = "gdn";
  EXPECT_EQ(error_of([&] { resolve_layer_settings(c); }),
            "TransformerConfig.experimental_attention_variant = 'gdn' needs linear_attention_freq (which layers are "
            "Gated DeltaNet), as in Megatron");
  c.experimental_attention_variant = "mamba";
  EXPECT_NE(error_of([&] { resolve_layer_settings(c); }).find("'mamba': expected gdn, gdn2, dsa"), std::string::npos);
}

}  // namespace
}  // namespace strata
