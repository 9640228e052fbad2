#include "strata/model/pipeline_layout.h"

#include "strata/core/error.h"

namespace strata {

PipelineLayout pipeline_layout(const LayerPattern& pattern, int pipeline_size, const PipelineSplitFlags& flags) {
  auto split = resolve_pipeline_split(pattern, pipeline_size, flags);
  // One rank runs every layer (a one-process model ignores the '|' marks), but the segments are
  // still the stages Megatron describes: each a virtual stage of that rank.
  if (split.pp_size == 1 && pattern.explicit_stages) split.vp_size = pattern.num_stages;
  PipelineLayout layout{.pipeline_size = split.pp_size, .virtual_stages = split.vp_size};
  for (int s = 0; s < split.pp_size * split.vp_size; ++s)
    layout.stages.push_back(pipeline_slice(pattern, split, layout.rank_of(s), layout.virtual_stage_of(s)));
  return layout;
}

std::string unmarked_stages_warning(const TransformerConfig& config, int pipeline_size) {
  const auto& pattern = config.hybrid_layer_pattern;
  const auto main_part = pattern.substr(0, pattern.find('/'));
  if (pattern.empty() || pipeline_size <= 1 || main_part.find('|') != std::string::npos) return "";
  return cat("hybrid_layer_pattern \"", pattern, "\" without '|' over ", pipeline_size,
             " pipeline ranks is deprecated in Megatron: mark the stages with '|'");
}

}  // namespace strata
