#pragma once
// Megatron's flags for how the decoder splits over the pipeline, beside
// --pipeline-model-parallel-size, turned into a PipelineSplit (layer_pattern.h) with Megatron's
// rules. Needs no LibTorch.
//
// Virtual stages (interleaved 1F1B): a pattern with '|' has pp * vp segments and vp is derived
// from them (segments / pp; the two virtual-stage flags are refused with it). A pattern without
// '|' (and a model described by num_layers and frequencies) takes vp from
// --num-virtual-stages-per-pipeline-rank, or from --num-layers-per-virtual-pipeline-stage as
// (layers / pp) / that; not both. Uneven first/last stages (--decoder-first-pipeline-num-layers,
// --decoder-last-pipeline-num-layers) only split patterns without '|', and combine with virtual
// stages only through --num-virtual-stages-per-pipeline-rank. Layers are TransformerLayers: a
// bracketed fusion such as [*-] counts as one.
#include <cstdint>
#include <optional>

#include "strata/model/layer_pattern.h"

namespace strata {

struct PipelineSplitFlags {
  std::optional<int64_t> num_virtual_stages_per_pipeline_rank;
  std::optional<int64_t> num_layers_per_virtual_pipeline_stage;
  std::optional<int64_t> decoder_first_pipeline_num_layers;
  std::optional<int64_t> decoder_last_pipeline_num_layers;
};

// The split of `pattern` over pp_size pipeline ranks that the flags ask for, checked for every
// rank and virtual stage. With one pipeline rank every layer stays on it ('|' marks are ignored, so
// a pipelined run's checkpoint loads into one process) and the flags that need more are refused.
// Errors name the flag and the value.
PipelineSplit resolve_pipeline_split(const LayerPattern& pattern, int pp_size, const PipelineSplitFlags& flags);

}  // namespace strata
