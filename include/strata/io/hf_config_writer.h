#pragma once
// HF config.json from a typed config (hf_config.h reads it back): every field HF's config class
// for the architecture saves, as transformers 5 writes it (rope_parameters, layer_types,
// layers_block_type). The model's fields come from the typed config; the settings strata keeps
// beside the model (initialisation, dropout, special tokens, dtype) from HfConfigExtras; the rest,
// which strata does not model (the context length, cache and kernel switches), are HF's defaults
// for the class. A YaRN RoPE sets max_position_embeddings to factor x
// original_max_position_embeddings, the ratio HF's YaRN reads its scale from.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "strata/io/hf_config.h"

namespace strata::io {

struct HfConfigExtras {
  double initializer_range = 0.02;
  double attention_dropout = 0.0;
  double hidden_dropout = 0.0;  // Nemotron-H only
  // The tokenizer's ids; unset ones keep the class's defaults.
  std::optional<int64_t> bos_token_id, eos_token_id;
  std::string dtype = "float32";  // torch's name of the weights' dtype
};

// Keys come out sorted, as HF writes them; an infinity as HF spells it ({"__float__": "Infinity"}).
// DeepSeek-V4, which strata cannot build, is refused.
nlohmann::json hf_config_json(const HfConfig& config, const HfConfigExtras& extras);

}  // namespace strata::io
