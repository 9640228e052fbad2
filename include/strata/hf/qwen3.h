#pragma once
// Qwen3 (dense): GQA attention with per-head q/k RMSNorm, SwiGLU MLP, RMSNorm, RoPE (plain, or
// scaled as rope_type linear, yarn or llama3 says).
#include "strata/hf/architecture.h"

namespace strata::hf {

TransformerConfig qwen3_transformer_config(const io::Qwen3Config& config);
TensorMap qwen3_tensor_map(const TransformerConfig& config);
HfModel build_qwen3(const io::Qwen3Config& config);

}  // namespace strata::hf
