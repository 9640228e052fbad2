#pragma once
// What export needs to say a strata model in an HF architecture's terms: its layers as HF's
// (sequence mixer, channel mixer) layers, and activations by HF's names.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "strata/core/config.h"
#include "strata/model/layer_pattern.h"

namespace strata::hf {

// The canonical layers of `layers` (fused or not) taken two by two as HF's decoder layers of
// Qwen3, Qwen3-Next and DeepSeek are: a sequence mixer, then a channel mixer. `arch` begins the
// error for layers that do not pair up that way.
std::vector<std::pair<SequenceMixerKind, ChannelMixerKind>> mixer_pairs(const std::vector<PatternLayer>& layers,
                                                                        std::string_view arch);

// HF's ACT2FN name: "silu", "gelu", "relu", "relu2" (squared ReLU).
std::string hf_activation_name(Activation activation);

}  // namespace strata::hf
