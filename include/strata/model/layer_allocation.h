#pragma once
// Which layer each position of a model holds, from its config, as Megatron-LM decides it: the
// hybrid layer pattern (layer_pattern.h) when there is one; else the deprecated ratios
// (hybrid_attention_ratio, hybrid_mlp_ratio; Megatron's pattern_from_ratios); else GPT-style layers,
// one attention+MLP layer per num_layers, their kinds from experimental_attention_variant,
// linear_attention_freq, multi_latent_attention, num_moe_experts and moe_layer_freq (Megatron's
// experimental-attention-variant layer specs). docs/layer_patterns.md says it for users.
#include <string>
#include <vector>

#include "strata/core/config.h"
#include "strata/model/layer_pattern.h"

namespace strata {

// Megatron's pattern_from_ratios: round(num_layers * attention_ratio) '*' layers spread evenly
// among Mamba2 'M' layers, then round(num_layers * mlp_ratio) of the 'M' replaced by '-', evenly
// (Python's round: halves go to the even neighbour). "MMMMMMMM" for ratios 0.
std::string pattern_from_ratios(int64_t num_layers, double attention_ratio, double mlp_ratio);

// The GPT-style layers of a config without a pattern or ratios, one fused layer each:
//  sequence mixer: with experimental_attention_variant gdn, Gated DeltaNet where
//    linear_attention_freq gives 1 (an integer N: all but every N-th layer, (i + 1) % N != 0);
//    with dsa, DeepSeek sparse attention everywhere; elsewhere standard attention: '+' (MLA) with
//    multi_latent_attention, '*' otherwise;
//  channel mixer: with num_moe_experts, MoE where moe_layer_freq gives 1 (an integer N: every
//    N-th layer from the first, i % N == 0); a dense MLP elsewhere.
// "[GE][GE][*E]" for 3 layers, gdn, linear_attention_freq 3 and experts.
std::string pattern_from_frequencies(const TransformerConfig& config);

// The pattern a config describes, checked. Strict: with a pattern, num_layers must equal its count
// (resolve_layer_settings makes it so), and the model must have main-decoder layers.
LayerPattern resolve_layer_pattern(const TransformerConfig& config);

// The layers of each MTP depth the config describes: the pattern's part after '/', or, for a
// model without a hybrid pattern, mtp_num_layers copies of its last layer's kinds (Megatron's GPT
// MTP). A mtp_num_layers that contradicts the pattern, or MTP on a hybrid pattern without a '/'
// part, is an error.
std::vector<std::vector<PatternLayer>> resolve_mtp_depths(const TransformerConfig& config);

// A config as Megatron's argument handling leaves it, and what it said on the way.
struct ResolvedLayers {
  TransformerConfig config;
  LayerPattern pattern;
  std::vector<std::string> warnings;  // each one line, for the command to print
};

// What `strata train` and `strata describe` do to a config before anything else, as Megatron does
// to its arguments: the ratios become the pattern they give (deprecated: a warning), the pattern's
// layer count wins over a num_layers that disagrees (a warning), gated_delta_net reads as gdn (a
// warning), and settings Megatron ignores (linear_attention_freq without gdn, moe_layer_freq
// without experts or beside a pattern) are named in a warning. Errors as resolve_layer_pattern.
ResolvedLayers resolve_layer_settings(TransformerConfig config);

}  // namespace strata
