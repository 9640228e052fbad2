// How the decoder splits over pipeline ranks and virtual stages: uneven first/last stages
// (pipeline_slice with a PipelineSplit) and Megatron's flag rules (resolve_pipeline_split).
#include "strata/model/pipeline_split.h"

#include <gtest/gtest.h>

#include "strata/core/error.h"

namespace strata {
namespace {

std::vector<int64_t> canonical_numbers(const std::vector<PatternLayer>& layers) {
  std::vector<int64_t> out;
  for (const auto& l : layers) out.push_back(l.first_canonical);
  return out;
}

using Layers = std::vector<int64_t>;

std::string slice_error(const std::string& pattern, const PipelineSplit& split) {
  try {
    pipeline_slice(parse_layer_pattern(pattern), split, 0, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string resolve_error(const std::string& pattern, int pp, const PipelineSplitFlags& flags) {
  try {
    resolve_pipeline_split(parse_layer_pattern(pattern), pp, flags);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(UnevenPipeline, FirstStageTakesItsLayersAndTheRestSplitEvenly) {
  const auto p = parse_layer_pattern("*-*-*-*-");
  const PipelineSplit split{.pp_size = 2, .first_stage_layers = 2};
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 0)), (Layers{0, 1}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 1)), (Layers{2, 3, 4, 5, 6, 7}));
}

TEST(UnevenPipeline, FirstAndLastStagesAroundTheMiddle) {
  const auto p = parse_layer_pattern("*-*-*-*-");
  const PipelineSplit split{.pp_size = 3, .first_stage_layers = 1, .last_stage_layers = 1};
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 0)), (Layers{0}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 1)), (Layers{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 2)), (Layers{7}));
  // Only the last one: the first rank is a middle one.
  const PipelineSplit last_only{.pp_size = 3, .last_stage_layers = 2};
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, last_only, 0)), (Layers{0, 1, 2}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, last_only, 1)), (Layers{3, 4, 5}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, last_only, 2)), (Layers{6, 7}));
}

// Megatron's interleaved uneven layout: each virtual round takes first / vp layers on rank 0,
// last / vp on the last rank, the middle ranks' share between them.
TEST(UnevenPipeline, VirtualStagesSplitEachRanksLayersIntoRounds) {
  const auto p = parse_layer_pattern("*-*-*-*-");
  const PipelineSplit split{.pp_size = 2, .vp_size = 2, .first_stage_layers = 2};
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 0, 0)), (Layers{0}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 1, 0)), (Layers{1, 2, 3}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 0, 1)), (Layers{4}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 1, 1)), (Layers{5, 6, 7}));
  for (const auto& layer : pipeline_slice(p, split, 1, 1)) EXPECT_EQ(layer.stage, 3);

  const auto twelve = parse_layer_pattern("*-*-*-*-*-*-");
  const PipelineSplit three{.pp_size = 3, .vp_size = 2, .first_stage_layers = 2, .last_stage_layers = 4};
  EXPECT_EQ(canonical_numbers(pipeline_slice(twelve, three, 0, 0)), (Layers{0}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(twelve, three, 1, 0)), (Layers{1, 2, 3}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(twelve, three, 2, 0)), (Layers{4, 5}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(twelve, three, 0, 1)), (Layers{6}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(twelve, three, 1, 1)), (Layers{7, 8, 9}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(twelve, three, 2, 1)), (Layers{10, 11}));
}

TEST(UnevenPipeline, AFusedLayerCountsAsOne) {
  const auto p = parse_layer_pattern("[*-][*-][*-][*-]");
  const PipelineSplit split{.pp_size = 2, .first_stage_layers = 1};
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 0)), (Layers{0}));
  EXPECT_EQ(canonical_numbers(pipeline_slice(p, split, 1)), (Layers{2, 4, 6}));
}

TEST(UnevenPipeline, SplitsThatDoNotWorkOutAreRefused) {
  EXPECT_EQ(slice_error("*-*-*-*-", {.pp_size = 2, .vp_size = 2, .first_stage_layers = 3}),
            "--decoder-first-pipeline-num-layers 3: the layers of that stage must split evenly over its 2 virtual "
            "stages");
  EXPECT_EQ(slice_error("*-*-*-*-", {.pp_size = 2, .last_stage_layers = 0}),
            "--decoder-last-pipeline-num-layers 0: expected at least 1 layer");
  EXPECT_EQ(slice_error("*-*-*-*-", {.pp_size = 2, .first_stage_layers = 6, .last_stage_layers = 4}),
            "layer pattern \"*-*-*-*-\" has 8 layers; the uneven first and last stages leave -2 for the 0 pipeline "
            "stages between them (expected none)");
  EXPECT_EQ(slice_error("*-*-*-*-", {.pp_size = 2, .first_stage_layers = 4, .last_stage_layers = 2}),
            "layer pattern \"*-*-*-*-\" has 8 layers; the uneven first and last stages leave 2 for the 0 pipeline "
            "stages between them (expected none)");
  EXPECT_EQ(slice_error("*-*-*-*-", {.pp_size = 4, .first_stage_layers = 1, .last_stage_layers = 2}),
            "layer pattern \"*-*-*-*-\": the 5 layers between the uneven first and last stages do not split evenly "
            "over 2 pipeline stages x 1 virtual stages");
  EXPECT_EQ(slice_error("*-|*-", {.pp_size = 2, .first_stage_layers = 1}),
            "layer pattern \"*-|*-\" marks its pipeline stages with '|', so --decoder-first-pipeline-num-layers cannot "
            "be given: the pattern already defines the pipeline layout");
}

TEST(PipelineSplitFlags, SegmentsOfThePatternSetTheVirtualStages) {
  const auto split = resolve_pipeline_split(parse_layer_pattern("*-|*-|*-|*-"), 2, {});
  EXPECT_EQ(split.pp_size, 2);
  EXPECT_EQ(split.vp_size, 2);
  EXPECT_EQ(resolve_pipeline_split(parse_layer_pattern("*-|*-"), 2, {}).vp_size, 1);
  // One pipeline rank holds everything, whatever the marks.
  EXPECT_EQ(resolve_pipeline_split(parse_layer_pattern("*-|*-|*-"), 1, {}).vp_size, 1);
  EXPECT_EQ(resolve_error("*-|*-|*-", 2, {}),
            "layer pattern \"*-|*-|*-\" has 3 pipeline segments ('|'), which must be a multiple of "
            "--pipeline-model-parallel-size 2");
  EXPECT_EQ(resolve_error("*-|*-|*-|*-", 2, {.num_virtual_stages_per_pipeline_rank = 2}),
            "--num-virtual-stages-per-pipeline-rank cannot be used with layer pattern \"*-|*-|*-|*-\": its '|' "
            "segments (4) set the virtual pipeline stages, segments / --pipeline-model-parallel-size per rank");
  EXPECT_NE(resolve_error("*-|*-", 2, {.decoder_last_pipeline_num_layers = 1}).find("already defines the pipeline layout"),
            std::string::npos);
}

TEST(PipelineSplitFlags, FlagsSetTheVirtualStagesOfPatternsWithoutMarks) {
  const auto p = parse_layer_pattern("*-*-*-*-");
  EXPECT_EQ(resolve_pipeline_split(p, 2, {.num_virtual_stages_per_pipeline_rank = 2}).vp_size, 2);
  EXPECT_EQ(resolve_pipeline_split(p, 2, {.num_layers_per_virtual_pipeline_stage = 1}).vp_size, 4);
  EXPECT_EQ(resolve_pipeline_split(p, 2, {}).vp_size, 1);
  const auto uneven = resolve_pipeline_split(
      p, 2, {.num_virtual_stages_per_pipeline_rank = 2, .decoder_first_pipeline_num_layers = 2});
  EXPECT_EQ(uneven.vp_size, 2);
  EXPECT_EQ(uneven.first_stage_layers, 2);
  EXPECT_FALSE(uneven.last_stage_layers);
}

TEST(PipelineSplitFlags, MegatronsRefusalsNameTheFlags) {
  EXPECT_EQ(resolve_error("*-*-*-*-", 2, {.num_virtual_stages_per_pipeline_rank = 2, .num_layers_per_virtual_pipeline_stage = 2}),
            "--num-virtual-stages-per-pipeline-rank 2 and --num-layers-per-virtual-pipeline-stage 2: give at most one "
            "of them (both set the virtual stages per pipeline rank)");
  EXPECT_EQ(resolve_error("*-*-*-*-", 1, {.num_virtual_stages_per_pipeline_rank = 2}),
            "--num-virtual-stages-per-pipeline-rank 2: virtual pipeline stages need --pipeline-model-parallel-size "
            "above 1");
  EXPECT_EQ(resolve_error("*-*-*-*-", 1, {.decoder_first_pipeline_num_layers = 2}),
            "--decoder-first-pipeline-num-layers 2: an uneven first or last stage needs --pipeline-model-parallel-size "
            "above 1");
  EXPECT_EQ(resolve_error("*-*-*-*-", 2, {.num_layers_per_virtual_pipeline_stage = 1, .decoder_first_pipeline_num_layers = 2}),
            "--num-layers-per-virtual-pipeline-stage 1: with an uneven first or last stage, give the virtual stages "
            "with --num-virtual-stages-per-pipeline-rank");
  EXPECT_EQ(resolve_error("*-*-*-*-", 2, {.num_layers_per_virtual_pipeline_stage = 3}),
            "--num-layers-per-virtual-pipeline-stage 3: the 4 layers of each pipeline rank must be a multiple of it");
  EXPECT_EQ(resolve_error("*-*-*", 2, {.num_layers_per_virtual_pipeline_stage = 1}),
            "layer pattern \"*-*-*\": its 5 layers must be a multiple of --pipeline-model-parallel-size 2 for "
            "--num-layers-per-virtual-pipeline-stage");
  EXPECT_EQ(resolve_error("*-*-*-*-", 2, {.num_virtual_stages_per_pipeline_rank = 3}),
            "layer pattern \"*-*-*-*-\": 8 layers do not split evenly over 6 pipeline stages; mark the stages with '|'");
  EXPECT_EQ(resolve_error("*-*-", 2, {.num_virtual_stages_per_pipeline_rank = 5}),
            "--num-virtual-stages-per-pipeline-rank 5: more virtual stages than layer pattern \"*-*-\" has layers (4)");
}

}  // namespace
}  // namespace strata
