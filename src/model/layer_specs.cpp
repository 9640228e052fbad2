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
  auto block = block_spec(registry, resolve_layer_pattern(config).layers);
  add_hyper_connections(block, config);
  return block;
}

MultiTokenPredictionSubmodules mtp_spec(const LayerRegistry& registry, const TransformerConfig& config) {
  MultiTokenPredictionSubmodules mtp;
  for (const auto& depth : resolve_mtp_depths(config))
    mtp.depths.push_back(block_spec(registry, depth, /*with_final_layernorm=*/false));
  if (!mtp.depths.empty()) mtp.norm = registry.norm();
  return mtp;
}

LanguageModelSubmodules language_model_spec(const LayerRegistry& registry, const TransformerConfig& config) {
  return {decoder_spec(registry, config), mtp_spec(registry, config)};
}

void add_hyper_connections(TransformerBlockSubmodules& block, const TransformerConfig& config) {
  if (!config.enable_mhc_connections) return;
  const auto options = hyper_connection_options(config);
  for (auto& layer : block.layers) layer.submodules.residual = hyper_connection(options);
  block.hyper_connections = BlockHyperConnections{
      .options = options,
      .expand = block.layers.empty() || block.layers.front().placement.first_canonical == 0,
      .contract = block.final_layernorm.has_value(),
  };
}

}  // namespace strata
