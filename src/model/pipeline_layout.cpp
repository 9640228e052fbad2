#include "strata/model/pipeline_layout.h"

#include "strata/core/error.h"

namespace strata {

PipelineLayout pipeline_layout(const LayerPattern& pattern, int pipeline_size) {
  if (pipeline_size < 1) fail("pipeline-parallel size ", pipeline_size, ": expected at least 1");
  PipelineLayout layout{.pipeline_size = pipeline_size};
  if (pattern.explicit_stages) {
    if (pattern.num_stages % pipeline_size != 0)
      fail("layer pattern \"", pattern.text, "\" has ", pattern.num_stages, " pipeline stages ('|'), which ",
           pipeline_size, " pipeline-parallel ranks do not divide evenly: each rank takes the same number of them, "
           "as in Megatron");
    layout.virtual_stages = pattern.num_stages / pipeline_size;
  }
  const int stages = layout.pipeline_size * layout.virtual_stages;
  for (int s = 0; s < stages; ++s)
    layout.stages.push_back(
        pipeline_slice(pattern, pipeline_size, layout.rank_of(s), layout.virtual_stages, layout.virtual_stage_of(s)));
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
