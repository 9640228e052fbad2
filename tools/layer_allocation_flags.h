#pragma once
// Megatron's flags that place layers without a pattern (model/layer_allocation.h):
// --experimental-attention-variant, --linear-attention-freq, --moe-layer-freq,
// --multi-latent-attention, and the deprecated --hybrid-attention-ratio / --hybrid-mlp-ratio.
// Shared by every command that takes `strata train`'s model flags.
#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "strata/core/config.h"

namespace strata::tools {

struct LayerAllocationFlags {
  std::optional<std::string> experimental_attention_variant;
  std::optional<LayerFrequency> linear_attention_freq, moe_layer_freq;
  std::optional<double> hybrid_attention_ratio, hybrid_mlp_ratio;
  bool multi_latent_attention = false;  // a flag can only turn it on; a config file can turn it off
  // The first of these flags given ("" when none).
  std::string first_given() const;
};

void add_layer_allocation_flags(CLI::App& command, LayerAllocationFlags& flags);

// Applies the flags on top of `config`. Ratios given on the command line replace the layout the
// config had, its pattern included, unless `pattern_flag_given` (--hybrid-layer-pattern with them
// is refused, as in Megatron, when the config is resolved).
void apply_layer_allocation_flags(const LayerAllocationFlags& flags, bool pattern_flag_given, TransformerConfig& config);

}  // namespace strata::tools
