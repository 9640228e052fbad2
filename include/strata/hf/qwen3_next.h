#pragma once
// Qwen3-Next: Gated DeltaNet ("linear_attention") and gated softmax attention ("full_attention")
// layers, each followed by a MoE with a sigmoid-gated shared expert, or by a dense SwiGLU MLP on
// the layers HF keeps dense (mlp_only_layers, decoder_sparse_step). Every RMSNorm but the Gated
// DeltaNet's output norm multiplies by (1 + w).
//
// Each HF layer is one fused strata layer, so HF layer i holds canonical layers 2i (its sequence
// mixer) and 2i + 1 (its channel mixer): "[GE][*-][GE][*E]" for layer_types
// (linear, full, linear, full) with mlp_only_layers [1].
#include "strata/hf/architecture.h"

namespace strata::hf {

// One bracket per HF layer: 'G' or '*' for layer_types[i], then 'E' or '-' as HF chooses the MLP.
std::string qwen3_next_layer_pattern(const io::Qwen3NextConfig& config);
TransformerConfig qwen3_next_transformer_config(const io::Qwen3NextConfig& config);
// Errors name a layer of the config's pattern that is not one fused sequence + channel mixer pair.
TensorMap qwen3_next_tensor_map(const TransformerConfig& config);
// For export: the Qwen3-Next config of a model whose layers are (Gated DeltaNet or attention) +
// (MLP or MoE) pairs. Dense layers are listed in mlp_only_layers; the sizes of a kind of layer the
// model lacks (MoE, Gated DeltaNet) are HF's defaults, which then size nothing.
io::Qwen3NextConfig qwen3_next_hf_config(const TransformerConfig& config);

}  // namespace strata::hf
