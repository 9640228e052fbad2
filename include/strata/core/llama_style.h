#pragma once
// The Llama-style block (what HF's Llama, Qwen and DeepSeek models use) on top of a
// TransformerConfig, wherever Megatron's defaults (TransformerConfig's) differ.
#include "strata/core/config.h"

namespace strata {

// Rotary positions, RMSNorm, no biases, SwiGLU, no dropout, an untied output layer and a float32
// residual under autocast; every other field is left as it is.
void use_llama_style(TransformerConfig& config);

}  // namespace strata
