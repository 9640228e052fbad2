#pragma once
// Nemotron-H: one mixer per layer behind an RMSNorm (Mamba2, softmax attention without
// positional encoding, or a squared-ReLU MLP), so each HF layer is one canonical pattern layer.
#include "strata/hf/architecture.h"

namespace strata::hf {

// The layer pattern of layers_block_type: linear_attention -> M, full_attention -> *, mlp -> -.
std::string nemotron_h_layer_pattern(const io::NemotronHConfig& config);
TransformerConfig nemotron_h_transformer_config(const io::NemotronHConfig& config);
// HF layer i is canonical layer i. The checkpoint's tensors are under backbone.*, HF's modules
// (and so its gradients) under model.*.
TensorMap nemotron_h_tensor_map(const TransformerConfig& config);
// For export: the Nemotron-H config of a model whose canonical layers are Mamba2, attention and
// MLP layers. HF's PyTorch path floors dt at time_step_min: a lower limit at or below it is
// written as HF's default 0. The MoE fields keep HF's defaults (strata builds no Nemotron-H MoE).
io::NemotronHConfig nemotron_h_hf_config(const TransformerConfig& config);

}  // namespace strata::hf
