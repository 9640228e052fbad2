#pragma once
// Qwen3 (dense): GQA attention with per-head q/k RMSNorm, SwiGLU MLP, RMSNorm, RoPE (plain, or
// scaled as rope_type linear, yarn or llama3 says).
#include "strata/hf/architecture.h"

namespace strata::hf {

TransformerConfig qwen3_transformer_config(const io::Qwen3Config& config);
TensorMap qwen3_tensor_map(const TransformerConfig& config);
// For export: the Qwen3 config of a model whose layers are attention + dense MLP pairs; every
// other field is copied for export to compare (hf/export.h), the layers are checked here.
io::Qwen3Config qwen3_hf_config(const TransformerConfig& config);
// The fields Qwen3 shares with Qwen3-Next (its config's `base`), from config, for num_layers HF layers.
io::Qwen3Config qwen3_shared_hf_fields(const TransformerConfig& config, int64_t num_layers);

}  // namespace strata::hf
