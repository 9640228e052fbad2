// Stages, ranks and virtual stages of a pattern as Megatron-LM derives them from '|' and the
// pipeline size, and its deprecation warning for a hybrid pattern without '|' over several ranks.
#include "strata/model/pipeline_layout.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata {
namespace {

std::vector<std::vector<int64_t>> canonical_stages(const PipelineLayout& layout) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& stage : layout.stages) {
    out.emplace_back();
    for (const auto& layer : stage)
      for (int64_t i = 0; i < layer.num_canonical(); ++i) out.back().push_back(layer.first_canonical + i);
  }
  return out;
}

TEST(PipelineLayout, SegmentsOverRanksGiveVirtualStages) {
  const auto layout = pipeline_layout(parse_layer_pattern("M-|M-|M-|[*-]"), 2);
  EXPECT_EQ(layout.virtual_stages, 2);
  EXPECT_EQ(canonical_stages(layout), (std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  // Stage 2 is rank 0's second virtual stage; stage 1 rank 1's first.
  EXPECT_EQ(layout.rank_of(2), 0);
  EXPECT_EQ(layout.virtual_stage_of(2), 1);
  EXPECT_EQ(layout.rank_of(1), 1);
  EXPECT_EQ(layout.virtual_stage_of(1), 0);
}

TEST(PipelineLayout, OneRankTakesEverySegmentAsAVirtualStage) {
  const auto layout = pipeline_layout(parse_layer_pattern("||M*"), 1);
  EXPECT_EQ(layout.virtual_stages, 3);
  EXPECT_EQ(canonical_stages(layout), (std::vector<std::vector<int64_t>>{{}, {}, {0, 1}}));
}

TEST(PipelineLayout, WithoutMarksTheLayersSplitEvenlyOverTheRanks) {
  const auto layout = pipeline_layout(parse_layer_pattern("M*M*M*"), 3);
  EXPECT_EQ(layout.virtual_stages, 1);
  EXPECT_EQ(canonical_stages(layout), (std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}, {4, 5}}));
}

TEST(PipelineLayout, VirtualAndUnevenStagesFromTheFlags) {
  const auto interleaved = pipeline_layout(parse_layer_pattern("M*M*M*M*"), 2, {.num_virtual_stages_per_pipeline_rank = 2});
  EXPECT_EQ(interleaved.virtual_stages, 2);
  EXPECT_EQ(canonical_stages(interleaved), (std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  const auto uneven = pipeline_layout(parse_layer_pattern("M*M*M*"), 2, {.decoder_first_pipeline_num_layers = 1});
  EXPECT_EQ(canonical_stages(uneven), (std::vector<std::vector<int64_t>>{{0}, {1, 2, 3, 4, 5}}));
}

TEST(PipelineLayout, SegmentsTheRanksDoNotDivideAreRefused) {
  EXPECT_EQ(testing::error_of([] { pipeline_layout(parse_layer_pattern("M|M|M"), 2); }),
            "layer pattern \"M|M|M\" has 3 pipeline segments ('|'), which must be a multiple of "
            "--pipeline-model-parallel-size 2");
  EXPECT_NE(testing::error_of([] { pipeline_layout(parse_layer_pattern("M*M*M*"), 4); })
                .find("6 layers do not split evenly over 4 pipeline stages"),
            std::string::npos);
}

TEST(PipelineLayout, AHybridPatternWithoutMarksOverSeveralRanksIsDeprecated) {
  TransformerConfig c;
  c.hybrid_layer_pattern = "M*M*/MM";
  EXPECT_EQ(unmarked_stages_warning(c, 2),
            "hybrid_layer_pattern \"M*M*/MM\" without '|' over 2 pipeline ranks is deprecated in Megatron: mark the "
            "stages with '|'");
  EXPECT_EQ(unmarked_stages_warning(c, 1), "");
  c.hybrid_layer_pattern = "M*|M*/MM";
  EXPECT_EQ(unmarked_stages_warning(c, 2), "");
  c.hybrid_layer_pattern = "";  // GPT-style layers: Megatron splits them without a word
  EXPECT_EQ(unmarked_stages_warning(c, 2), "");
}

}  // namespace
}  // namespace strata
