#include "strata/model/pipeline_split.h"

#include "strata/core/error.h"

namespace strata {

PipelineSplit resolve_pipeline_split(const LayerPattern& pattern, int pp_size, const PipelineSplitFlags& flags) {
  const auto& stages_per_rank = flags.num_virtual_stages_per_pipeline_rank;
  const auto& layers_per_stage = flags.num_layers_per_virtual_pipeline_stage;
  const auto& first = flags.decoder_first_pipeline_num_layers;
  const auto& last = flags.decoder_last_pipeline_num_layers;
  if (pp_size < 1) fail("--pipeline-model-parallel-size ", pp_size, ": expected at least 1");
  if (stages_per_rank && layers_per_stage)
    fail("--num-virtual-stages-per-pipeline-rank ", *stages_per_rank, " and --num-layers-per-virtual-pipeline-stage ",
         *layers_per_stage, ": give at most one of them (both set the virtual stages per pipeline rank)");
  if (stages_per_rank && *stages_per_rank < 1)
    fail("--num-virtual-stages-per-pipeline-rank ", *stages_per_rank, ": expected at least 1");
  if (layers_per_stage && *layers_per_stage < 1)
    fail("--num-layers-per-virtual-pipeline-stage ", *layers_per_stage, ": expected at least 1");
  if (pp_size == 1) {
    if (stages_per_rank.value_or(1) > 1 || layers_per_stage)
      fail(stages_per_rank ? cat("--num-virtual-stages-per-pipeline-rank ", *stages_per_rank)
                           : cat("--num-layers-per-virtual-pipeline-stage ", *layers_per_stage),
           ": virtual pipeline stages need --pipeline-model-parallel-size above 1");
    if (first || last)
      fail(first ? cat("--decoder-first-pipeline-num-layers ", *first) : cat("--decoder-last-pipeline-num-layers ", *last),
           ": an uneven first or last stage needs --pipeline-model-parallel-size above 1");
    return {};
  }

  PipelineSplit split{.pp_size = pp_size, .first_stage_layers = first, .last_stage_layers = last};
  const auto layers = static_cast<int64_t>(pattern.layers.size());
  if (pattern.explicit_stages) {
    if (stages_per_rank || layers_per_stage)
      fail(stages_per_rank ? "--num-virtual-stages-per-pipeline-rank" : "--num-layers-per-virtual-pipeline-stage",
           " cannot be used with layer pattern \"", pattern.text, "\": its '|' segments (", pattern.num_stages,
           ") set the virtual pipeline stages, segments / --pipeline-model-parallel-size per rank");
    if (pattern.num_stages % pp_size != 0)
      fail("layer pattern \"", pattern.text, "\" has ", pattern.num_stages,
           " pipeline segments ('|'), which must be a multiple of --pipeline-model-parallel-size ", pp_size);
    split.vp_size = pattern.num_stages / pp_size;
  } else if (stages_per_rank) {
    if (*stages_per_rank > layers)
      fail("--num-virtual-stages-per-pipeline-rank ", *stages_per_rank, ": more virtual stages than layer pattern \"",
           pattern.text, "\" has layers (", layers, ")");
    split.vp_size = static_cast<int>(*stages_per_rank);
  } else if (layers_per_stage) {
    if (first || last)
      fail("--num-layers-per-virtual-pipeline-stage ", *layers_per_stage,
           ": with an uneven first or last stage, give the virtual stages with --num-virtual-stages-per-pipeline-rank");
    if (layers % pp_size != 0)
      fail("layer pattern \"", pattern.text, "\": its ", layers, " layers must be a multiple of --pipeline-model-parallel-size ",
           pp_size, " for --num-layers-per-virtual-pipeline-stage");
    if ((layers / pp_size) % *layers_per_stage != 0)
      fail("--num-layers-per-virtual-pipeline-stage ", *layers_per_stage, ": the ", layers / pp_size,
           " layers of each pipeline rank must be a multiple of it");
    split.vp_size = static_cast<int>(layers / pp_size / *layers_per_stage);
  }
  // Every rank's every virtual stage must come out (pipeline_slice's errors).
  for (int rank = 0; rank < pp_size; ++rank)
    for (int stage = 0; stage < split.vp_size; ++stage) pipeline_slice(pattern, split, rank, stage);
  return split;
}

}  // namespace strata
