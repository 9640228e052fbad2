#include "strata/model/layer_pattern.h"

#include <gtest/gtest.h>

#include "strata/core/error.h"

namespace strata {
namespace {

std::string error_of(const std::string& pattern, std::optional<int64_t> num_layers = std::nullopt) {
  try {
    parse_layer_pattern(pattern, num_layers);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LayerPattern, ParsesTheIssueExample) {
  auto p = parse_layer_pattern("M*-M*-|E*[G-]/*-");
  EXPECT_EQ(p.num_canonical_layers(), 10);
  EXPECT_EQ(p.num_stages, 2);
  ASSERT_EQ(p.layers.size(), 9u);
  // The fused layer [G-] is canonical layers 8 and 9, on stage 1.
  const auto& fused = p.layers[8];
  EXPECT_EQ(fused.sequence, SequenceMixerKind::GatedDeltaNet);
  EXPECT_EQ(fused.channel, ChannelMixerKind::Mlp);
  EXPECT_EQ(fused.sequence_canonical(), 8);
  EXPECT_EQ(fused.channel_canonical(), 9);
  EXPECT_EQ(fused.stage, 1);
  EXPECT_EQ(p.layers[7].sequence, SequenceMixerKind::Attention);
  EXPECT_EQ(p.layers[6].channel, ChannelMixerKind::MoE);
  EXPECT_EQ(p.layers[6].stage, 1);
  EXPECT_EQ(p.layers[5].stage, 0);
  ASSERT_EQ(p.mtp.size(), 1u);
  ASSERT_EQ(p.mtp[0].size(), 2u);
  EXPECT_EQ(p.mtp[0][1].channel, ChannelMixerKind::Mlp);
  EXPECT_EQ(p.mtp[0][1].first_canonical, 1);
  EXPECT_EQ(p.layers_text(), "M*-M*-E*[G-]");
}

TEST(LayerPattern, EverySymbolHasItsKind) {
  auto p = parse_layer_pattern("M*GDA-E");
  std::vector<char> symbols;
  for (const auto& l : p.layers) symbols.push_back(l.sequence ? symbol(*l.sequence) : symbol(*l.channel));
  EXPECT_EQ(std::string(symbols.begin(), symbols.end()), "M*GDA-E");
}

TEST(LayerPattern, NumLayersMustMatch) {
  EXPECT_NO_THROW(parse_layer_pattern("[*-][*-]", 4));
  auto e = error_of("[*-][*-]", 2);
  EXPECT_NE(e.find("has 4 layers before any '/', but num_layers = 2"), std::string::npos) << e;
}

struct BadPattern {
  std::string pattern;
  std::string message;
  size_t position;
};

// Test names show the pattern, not the struct's bytes.
void PrintTo(const BadPattern& bad, std::ostream* out) { *out << '"' << bad.pattern << '"'; }

class LayerPatternErrors : public ::testing::TestWithParam<BadPattern> {};

TEST_P(LayerPatternErrors, QuotesThePatternAndPointsAtThePosition) {
  const auto& bad = GetParam();
  auto e = error_of(bad.pattern);
  ASSERT_FALSE(e.empty()) << "pattern \"" << bad.pattern << "\" was accepted";
  EXPECT_NE(e.find("layer pattern \"" + bad.pattern + "\""), std::string::npos) << e;
  EXPECT_NE(e.find(bad.message), std::string::npos) << e;
  EXPECT_NE(e.find("(position " + std::to_string(bad.position) + ")"), std::string::npos) << e;
  // The caret line: two spaces, then `position` spaces, then '^'.
  EXPECT_NE(e.find("\n  " + std::string(bad.position, ' ') + "^"), std::string::npos) << e;
}

INSTANTIATE_TEST_SUITE_P(
    Table, LayerPatternErrors,
    ::testing::Values(BadPattern{"", "the pattern is empty", 0}, BadPattern{"M*x-", "unknown symbol 'x'", 2},
                      BadPattern{"M* -", "unknown symbol ' '", 2}, BadPattern{"[*-", "'[' is never closed", 0},
                      BadPattern{"*-]", "']' without a matching '['", 2},
                      BadPattern{"[*[-]]", "nested '['", 2}, BadPattern{"*[]-", "empty brackets", 1},
                      BadPattern{"[*|-]", "'|' inside brackets", 2}, BadPattern{"[*/-]", "'/' inside brackets", 2},
                      BadPattern{"[*--]", "a bracket holds two channel mixers", 3},
                      BadPattern{"[-*]", "a bracket starts with a channel mixer", 1},
                      BadPattern{"[*G]", "found a second sequence mixer", 2},
                      BadPattern{"[*]", "brackets hold a single mixer", 0},
                      BadPattern{"*-||*-", "empty pipeline stage", 3}, BadPattern{"|*-", "empty pipeline stage", 0},
                      BadPattern{"*-|", "empty pipeline stage at the end", 3},
                      BadPattern{"/*-", "the MTP part must follow the main decoder", 0},
                      BadPattern{"*-/", "empty MTP depth at the end", 3},
                      BadPattern{"*-//*-", "empty MTP depth", 3},
                      BadPattern{"*-/*-|*-", "'|' in the MTP part", 5},
                      BadPattern{"*-|/*-", "empty pipeline stage before the MTP part", 3},
                      BadPattern{"*-/*-/*E", "MTP depth 2 differs from depth 1", 5}));

TEST(LayerFrequencies, IntegerFrequenciesFollowMegatronsRules) {
  // LA freq 4: softmax attention on layers 3 and 7; MoE freq 2: MoE on layers 0, 2, 4, 6.
  auto text = pattern_from_frequencies(8, {.every = 4}, {.every = 2});
  EXPECT_EQ(text, "[GE][G-][GE][*-][GE][G-][GE][*-]");
  EXPECT_EQ(parse_layer_pattern(text).layers, parse_layer_pattern("[GE][G-][GE][*-][GE][G-][GE][*-]").layers);
}

TEST(LayerFrequencies, ExplicitListsGiveOneEntryPerLayer) {
  auto text = pattern_from_frequencies(4, {.explicit_list = {1, 0, 1, 0}}, {.explicit_list = {1, 1, 1, 0}});
  EXPECT_EQ(parse_layer_pattern(text).layers, parse_layer_pattern("[GE][*E][GE][*-]").layers);
}

TEST(LayerFrequencies, WithoutSettingsEveryLayerIsDenseAttention) {
  EXPECT_EQ(pattern_from_frequencies(2, {}, {}), "[*-][*-]");
}

TEST(LayerFrequencies, BadListsNameTheField) {
  try {
    pattern_from_frequencies(3, {.explicit_list = {1, 0}}, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear_attention_freq: the list has 2 entries"), std::string::npos);
  }
  try {
    pattern_from_frequencies(3, {}, {.every = 0});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("moe_layer_freq = 0"), std::string::npos);
  }
}

// A num_layers of 10^12 allocated terabytes (std::bad_alloc, or an out-of-memory kill); found by the
// model_config fuzzer.
TEST(LayerFrequencies, NumLayersBeyondTheLimitIsRefusedBeforeAllocating) {
  try {
    pattern_from_frequencies(1'000'000'000'000, {}, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "num_layers = 1000000000000: expected 1 to strata's limit of 10000 layers");
  }
  EXPECT_EQ(pattern_from_frequencies(kMaxLayers, {}, {}).size(), static_cast<size_t>(4 * kMaxLayers));
}

std::vector<int64_t> canonical_numbers(const std::vector<PatternLayer>& layers) {
  std::vector<int64_t> out;
  for (const auto& l : layers) out.push_back(l.first_canonical);
  return out;
}

TEST(PipelineSlice, EvenSplitKeepsGlobalLayerNumbers) {
  auto p = parse_layer_pattern("*-*-*-*-");
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, 2, 0)), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, 2, 1)), (std::vector<int64_t>{4, 5, 6, 7}));
}

TEST(PipelineSlice, VirtualStagesInterleave) {
  auto p = parse_layer_pattern("*-*-*-*-");
  // 4 stages of 2 layers: rank 0 holds stages 0 and 2, rank 1 holds stages 1 and 3.
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, 2, 0, 2, 0)), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, 2, 0, 2, 1)), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, 2, 1, 2, 0)), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, 2, 1, 2, 1)), (std::vector<int64_t>{6, 7}));
}

TEST(PipelineSlice, StageMarksOverrideEvenSplits) {
  auto p = parse_layer_pattern("*-*-*-|[*-]");
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, 2, 0)), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  auto last = pipeline_slice(p, 2, 1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].sequence_canonical(), 6);
  EXPECT_EQ(last[0].channel_canonical(), 7);
}

TEST(PipelineSlice, MismatchedStageCountsAreErrors) {
  auto marked = parse_layer_pattern("*-|*-");
  EXPECT_THROW(pipeline_slice(marked, 4, 0), Error);
  auto uneven = parse_layer_pattern("*-*");
  try {
    pipeline_slice(uneven, 2, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 layers do not split evenly over 2 pipeline stages"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata
