#include "strata/parallel/parallel_model.h"

#include "strata/backends/fused_backend.h"
#include "strata/core/error.h"
#include "strata/model/build_model.h"
#include "strata/model/layer_allocation.h"
#include "strata/model/layer_specs.h"
#include "strata/model/pipeline_split.h"
#include "strata/parallel/model_state.h"

namespace strata::parallel {

namespace {

bool has_tensor_parallel_split(const PatternLayer& layer) {
  const bool sequence_ok = !layer.sequence || *layer.sequence == SequenceMixerKind::Attention;
  const bool channel_ok = !layer.channel || *layer.channel == ChannelMixerKind::Mlp || *layer.channel == ChannelMixerKind::MoE;
  return sequence_ok && channel_ok;
}

std::string symbol_of(const PatternLayer& layer) {
  if (layer.sequence && *layer.sequence != SequenceMixerKind::Attention)
    return cat("'", symbol(*layer.sequence), "' (", name(*layer.sequence), ")");
  return cat("'", symbol(*layer.channel), "' (", name(*layer.channel), ")");
}

}  // namespace

std::shared_ptr<LanguageModel> build_parallel_language_model(std::shared_ptr<const TransformerConfig> config,
                                                             const ProcessGroups& pg, const PipelineSplit& split) {
  validate(*config);
  const auto pattern = resolve_layer_pattern(*config);
  if (pg.tp_size() > 1)
    for (const auto& layer : pattern.layers)
      if (!has_tensor_parallel_split(layer))
        fail("layer pattern \"", pattern.text, "\": symbol ", symbol_of(layer),
             " has no tensor-parallel split yet (softmax attention '*', MLP '-' and MoE 'E' do); use tensor-parallel "
             "size 1 for this pattern");
  const int pp = pg.pp_size(), stage = pg.pp_rank();
  if (split.pp_size != pp)
    fail("pipeline split over ", split.pp_size, " pipeline ranks, but the pipeline-parallel group has ", pp);
  if (pp == 1 && split.vp_size != 1)
    fail("pipeline split of ", split.vp_size, " virtual stages per rank: virtual stages need several pipeline ranks");
  // One stage takes every layer, whatever '|' marks the pattern has (a checkpoint of a pipelined
  // run loads into a single process). Several take their virtual stages' slices, one model chunk each.
  std::vector<PatternLayer> layers;
  std::vector<size_t> chunk_sizes;
  for (int chunk = 0; chunk < split.vp_size; ++chunk) {
    const auto slice = pp == 1 ? pattern.layers : pipeline_slice(pattern, split, stage, chunk);
    layers.insert(layers.end(), slice.begin(), slice.end());
    chunk_sizes.push_back(slice.size());
  }
  const PipelineRole role{.pre_process = stage == 0, .post_process = stage == pp - 1};
  auto build_stage = [&] {
    const auto registry = default_layer_registry(FusedBackend{}, *config);
    auto block = block_spec(registry, layers, role.post_process);
    block.chunk_sizes = chunk_sizes;
    add_hyper_connections(block, *config);
    // The MTP depths' spec goes to every stage: the model refuses them where it cannot run them.
    return std::make_shared<LanguageModel>(config, LanguageModelSubmodules{block, mtp_spec(registry, *config)}, pg,
                                           role);
  };
  // Split linears and experts draw their whole initial weights and keep their part, so one stage
  // draws what a single process draws. Several stages do not (each draws only its own layers):
  // the whole model is drawn once, the stage takes its tensors from it, and the random stream
  // continues from where the single process's would.
  if (pp == 1) return build_stage();
  auto whole = build_language_model(config);
  auto generator = at::detail::getDefaultCPUGenerator();
  const auto after_whole = generator.get_state();
  auto part = build_stage();
  generator.set_state(after_whole);
  const auto drawn = whole->canonical_state_dict();
  const auto placements = parameter_placements(*part);
  at::NoGradGuard no_grad;
  for (const auto& [name, tensor] : part->canonical_state_dict()) {
    const auto& p = placements.at(name);
    const_cast<at::Tensor&>(tensor).copy_(p.shard ? shard_of(drawn.at(name), *p.shard, name) : drawn.at(name));
  }
  return part;
}

std::shared_ptr<LanguageModel> build_parallel_language_model(std::shared_ptr<const TransformerConfig> config,
                                                             const ProcessGroups& pg) {
  return build_parallel_language_model(config, pg, resolve_pipeline_split(resolve_layer_pattern(*config), pg.pp_size(), {}));
}

}  // namespace strata::parallel
