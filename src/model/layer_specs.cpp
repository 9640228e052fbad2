#include "strata/model/layer_specs.h"

#include "strata/core/error.h"
#include "strata/model/layer_allocation.h"

namespace strata {

void LayerRegistry::set(SequenceMixerKind kind, Builder<slots::SelfAttention> builder) {
  sequence_.insert_or_assign(kind, std::move(builder));
}

void LayerRegistry::set(ChannelMixerKind kind, Builder<slots::Mlp> builder) {
  channel_.insert_or_assign(kind, std::move(builder));
}

std::string LayerRegistry::registered() const {
  std::string out;
  for (const auto& [kind, _] : sequence_) out += cat(out.empty() ? "" : ", ", "'", symbol(kind), "' ", name(kind));
  for (const auto& [kind, _] : channel_) out += cat(out.empty() ? "" : ", ", "'", symbol(kind), "' ", name(kind));
  return out;
}

TransformerLayerSubmodules LayerRegistry::layer_spec(const PatternLayer& layer) const {
  TransformerLayerSubmodules spec;
  if (layer.sequence) {
    auto it = sequence_.find(*layer.sequence);
    if (it == sequence_.end())
      fail("layer pattern symbol '", symbol(*layer.sequence), "' (", name(*layer.sequence),
           ") cannot be built yet: no builder is registered for it (available: ", registered(), ")");
    spec.input_layernorm = norm_;
    spec.self_attention = it->second;
  }
  if (layer.channel) {
    auto it = channel_.find(*layer.channel);
    if (it == channel_.end())
      fail("layer pattern symbol '", symbol(*layer.channel), "' (", name(*layer.channel),
           ") cannot be built yet: no builder is registered for it (available: ", registered(), ")");
    spec.pre_mlp_layernorm = norm_;
    spec.mlp = it->second;
  }
  return spec;
}

TransformerBlockSubmodules block_spec(const LayerRegistry& registry, const std::vector<PatternLayer>& layers,
                                      bool with_final_layernorm) {
  TransformerBlockSubmodules block;
  for (const auto& layer : layers) block.layers.push_back({registry.layer_spec(layer), layer});
  if (with_final_layernorm) block.final_layernorm = registry.norm();
  return block;
}

TransformerBlockSubmodules decoder_spec(const LayerRegistry& registry, const TransformerConfig& config) {
  auto pattern = resolve_layer_pattern(config);
  if (!pattern.mtp.empty())
    fail("layer pattern \"", pattern.text, "\": multi-token prediction layers (the part after '/') cannot be built yet");
  auto block = block_spec(registry, pattern.layers);
  add_hyper_connections(block, config);
  return block;
}

void add_hyper_connections(TransformerBlockSubmodules& block, const TransformerConfig& config) {
  if (!config.enable_hyper_connections) return;
  const auto options = hyper_connection_options(config);
  for (size_t i = 0; i < block.layers.size(); ++i) {
    auto layer_options = options;
    layer_options.recompute = static_cast<int64_t>(i) < config.mhc_recompute_num_layers;
    block.layers[i].submodules.residual = hyper_connection(layer_options);
  }
  block.hyper_connections = BlockHyperConnections{
      .options = options,
      .expand = block.layers.empty() || block.layers.front().placement.first_canonical == 0,
      .contract = block.final_layernorm.has_value(),
  };
}

}  // namespace strata
