#pragma once
// Tensor-map pieces that several HF architectures share.
#include <string>

#include "strata/core/config.h"
#include "strata/hf/tensor_map.h"

namespace strata::hf {

// A SwiGLU MLP in HF's layout (gate_proj, up_proj, down_proj under `hf`) onto strata's MLP under
// `st` (linear_fc1 = [gate; up], linear_fc2), `ffn` rows per half.
void add_swiglu_mlp(TensorMap& map, const std::string& st, const std::string& hf, int64_t ffn);

// The final norm (HF's name `hf_final_norm`) and, unless tied to the embedding, lm_head.
void add_final_norm_and_output(TensorMap& map, const TransformerConfig& c, const std::string& hf_final_norm);

}  // namespace strata::hf
