#pragma once
// Where each layer of a pattern runs under pipeline parallelism, as Megatron-LM derives it from
// --hybrid-layer-pattern, --pipeline-model-parallel-size and the virtual and uneven stage flags
// (resolve_pipeline_split): with '|', every segment is one stage and the ranks take the segments in
// turn, so their count must divide by the pipeline size and gives the virtual stages per rank
// (segments / pipeline size); without '|', the flags' virtual stages per rank, the layers split
// evenly but for an uneven first or last stage (pipeline_slice says how). Stage s runs on rank
// s % pipeline size as its virtual stage s / pipeline size.
#include <string>
#include <vector>

#include "strata/model/layer_pattern.h"
#include "strata/model/pipeline_split.h"

namespace strata {

struct PipelineLayout {
  int pipeline_size = 1;   // ranks
  int virtual_stages = 1;  // per rank
  std::vector<std::vector<PatternLayer>> stages;  // in stage order; a stage may be empty ("||M")

  int rank_of(int stage) const { return stage % pipeline_size; }
  int virtual_stage_of(int stage) const { return stage / pipeline_size; }
};

PipelineLayout pipeline_layout(const LayerPattern& pattern, int pipeline_size, const PipelineSplitFlags& flags = {});

// Megatron's deprecation warning for a hybrid_layer_pattern without '|' split over several
// ranks (its select_pipeline_segment); "" when there is nothing to warn about.
std::string unmarked_stages_warning(const TransformerConfig& config, int pipeline_size);

}  // namespace strata
