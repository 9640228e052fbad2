#include "strata/hf/layer_schedule.h"

#include "strata/core/error.h"

namespace strata::hf {

std::vector<std::pair<SequenceMixerKind, ChannelMixerKind>> mixer_pairs(const std::vector<PatternLayer>& layers,
                                                                        std::string_view arch) {
  std::vector<std::pair<SequenceMixerKind, ChannelMixerKind>> pairs;
  const PatternLayer* pending = nullptr;  // the layer whose sequence mixer waits for a channel mixer
  for (const auto& layer : layers) {
    if (layer.sequence) {
      if (pending)
        fail(arch, ": canonical layer ", pending->sequence_canonical(), " (", name(*pending->sequence),
             ") has no channel mixer after it; each HF layer is a sequence mixer, then an MLP or MoE");
      pending = &layer;
    }
    if (layer.channel) {
      if (!pending)
        fail(arch, ": canonical layer ", layer.channel_canonical(), " (", name(*layer.channel),
             ") has no sequence mixer before it; each HF layer is a sequence mixer, then an MLP or MoE");
      pairs.emplace_back(*pending->sequence, *layer.channel);
      pending = nullptr;
    }
  }
  if (pending)
    fail(arch, ": canonical layer ", pending->sequence_canonical(), " (", name(*pending->sequence),
         ") has no channel mixer after it; each HF layer is a sequence mixer, then an MLP or MoE");
  return pairs;
}

std::string hf_activation_name(Activation activation) {
  return activation == Activation::SquaredReLU ? "relu2" : to_string(activation);
}

}  // namespace strata::hf
