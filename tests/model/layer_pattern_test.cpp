#include "strata/model/layer_pattern.h"

#include <gtest/gtest.h>

#include "strata/core/error.h"

namespace strata {
namespace {

std::string error_of(const std::string& pattern) {
  try {
    parse_layer_pattern(pattern);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The symbols of a layer list, one per TransformerLayer ("[G-]" for a fused one).
std::string texts(const std::vector<PatternLayer>& layers) {
  std::string out;
  for (const auto& l : layers) out += l.text();
  return out;
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
  EXPECT_EQ(p.mtp_text(), "*-");
}

TEST(LayerPattern, EverySymbolHasItsKind) {
  // '*' and MLA-based attention cannot share a model, so two models cover the seven symbols.
  EXPECT_EQ(texts(parse_layer_pattern("MG*-E").layers), "MG*-E");
  auto latent = parse_layer_pattern("D+-E");
  EXPECT_EQ(texts(latent.layers), "D+-E");
  EXPECT_EQ(latent.layers[0].sequence, SequenceMixerKind::DeepSeekSparseAttention);
  EXPECT_EQ(latent.layers[1].sequence, SequenceMixerKind::MultiLatentAttention);
}

TEST(LayerPattern, AIsReadAsMlaAndPrintedAsPlus) {
  auto p = parse_layer_pattern("A-[AE]");
  EXPECT_EQ(p.layers[0].sequence, SequenceMixerKind::MultiLatentAttention);
  EXPECT_EQ(p.layers[2].sequence, SequenceMixerKind::MultiLatentAttention);
  EXPECT_EQ(p.layers_text(), "+-[+E]");
  EXPECT_EQ(parse_layer_pattern(p.layers_text()).layers, p.layers);
}

TEST(LayerPattern, EmptyPipelineStagesHoldNoLayers) {
  auto p = parse_layer_pattern("||M*");
  EXPECT_EQ(p.num_stages, 3);
  EXPECT_TRUE(p.explicit_stages);
  ASSERT_EQ(p.layers.size(), 2u);
  EXPECT_EQ(p.layers[0].stage, 2);
  EXPECT_EQ(p.layers[0].first_canonical, 0);
  EXPECT_TRUE(pipeline_slice(p, 3, 0).empty());
  EXPECT_TRUE(pipeline_slice(p, 3, 1).empty());
  EXPECT_EQ(pipeline_slice(p, 3, 2).size(), 2u);
  EXPECT_EQ(parse_layer_pattern("*-|").num_stages, 2);
  EXPECT_EQ(parse_layer_pattern("*-|/*-").mtp.size(), 1u);
}

TEST(LayerPattern, SlashesWithNothingAfterThemAreNoMtpDepth) {
  for (const auto* text : {"M*M*/", "M*M*//"}) {
    auto p = parse_layer_pattern(text);
    EXPECT_TRUE(p.mtp.empty()) << text;
    EXPECT_EQ(p.num_canonical_layers(), 4) << text;
    EXPECT_EQ(p.mtp_text(), "") << text;
  }
}

TEST(LayerPattern, EveryPartAfterASlashIsOneMtpDepth) {
  auto p = parse_layer_pattern("M*/*/*/*");
  EXPECT_EQ(p.mtp.size(), 3u);
  EXPECT_EQ(p.mtp_text(), "*");
  EXPECT_EQ(p.mtp[2][0].stage, 2);
  EXPECT_EQ(parse_layer_pattern("*-/*-/*-").mtp.size(), 2u);
  EXPECT_EQ(parse_layer_pattern("M-M-|M-M*-/[M-]/[M-]").mtp_text(), "[M-]");
}

TEST(LayerPattern, AnEmptyMainPartParsesToNoMainLayers) {
  EXPECT_TRUE(parse_layer_pattern("").layers.empty());
  auto p = parse_layer_pattern("/MM/MM");
  EXPECT_TRUE(p.layers.empty());
  EXPECT_EQ(p.mtp.size(), 2u);
  EXPECT_EQ(p.mtp_text(), "MM");
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

const char* const kSoftmaxBesideLatent = "softmax attention '*' and MLA-based attention ('+' or 'D') in one model";

INSTANTIATE_TEST_SUITE_P(
    Table, LayerPatternErrors,
    ::testing::Values(BadPattern{"M*x-", "'x' is not a valid layer symbol", 2},
                      BadPattern{"M* -", "' ' is not a valid layer symbol", 2},
                      BadPattern{"[*-", "'[' is never closed", 0}, BadPattern{"*-]", "']' without a matching '['", 2},
                      BadPattern{"[*[-]]", "nested '['", 2}, BadPattern{"*[]-", "empty brackets", 1},
                      BadPattern{"[*|-]", "'|' inside brackets", 2}, BadPattern{"[*/-]", "'/' inside brackets", 2},
                      BadPattern{"[*--]", "a bracket holds two channel mixers", 3},
                      BadPattern{"[-*]", "a bracket starts with a channel mixer", 1},
                      BadPattern{"[*G]", "found a second sequence mixer", 2},
                      BadPattern{"[*]", "brackets hold a single mixer", 0},
                      BadPattern{"*-//*-", "every MTP depth must repeat one pattern: depth 1 is \"\", depth 2 is \"*-\"", 4},
                      BadPattern{"*-/*-/", "every MTP depth must repeat one pattern", 6},
                      BadPattern{"*-/*-|*-", "'|' is not a valid layer symbol in the MTP part", 5},
                      BadPattern{"*-/*-/*E", "depth 1 is \"*-\", depth 2 is \"*E\"", 6},
                      BadPattern{"*-/[*-]/*-", "every MTP depth must repeat one pattern", 8},
                      // Megatron compares the depths as text before reading their symbols.
                      BadPattern{"M*M*/MM/Ma", "every MTP depth must repeat one pattern", 8},
                      BadPattern{"M*M*/Ma/Ma", "'a' is not a valid layer symbol", 6},
                      BadPattern{"MDM*-", kSoftmaxBesideLatent, 3}, BadPattern{"M+M*-", kSoftmaxBesideLatent, 3},
                      BadPattern{"*|A", kSoftmaxBesideLatent, 2},
                      BadPattern{"+-/*-", "in one model (the main decoder's layers and the MTP layers together)", 3}));

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
