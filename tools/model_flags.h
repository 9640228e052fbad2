#pragma once
// The model flags of `strata train`: Megatron-LM's model-construction flags, with its names, types
// and defaults, each setting TransformerConfig fields over a base model (docs/megatron.md). A flag
// left out changes nothing: the base decides (train_setup.h: the checkpoint's model, the
// --model-config file, Megatron's defaults, or the embedded default model).
#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "layer_allocation_flags.h"
#include "strata/core/config.h"

namespace strata::tools {

struct ModelFlags {
  // What each given flag sets, with the flag's name, in registration order.
  struct Setting {
    std::string flag;
    std::function<void(TransformerConfig&)> apply;
  };
  std::vector<Setting> given;

  // Flags whose meaning depends on others, settled once all are known (apply_model_flags).
  std::optional<std::string> hybrid_layer_pattern, hybrid_override_pattern;
  std::optional<int64_t> num_layers, num_query_groups;
  bool group_query_attention = false, swiglu = false, squared_relu = false, no_position_embedding = false;
  bool moe_router_pre_softmax = false, use_rope_scaling = false, recompute_activations = false;
  LayerAllocationFlags layer_allocation;  // without a pattern: variant, frequencies, MLA, ratios
  std::optional<std::string> moe_router_load_balancing_type, rope_type;
  std::optional<double> rope_scaling_factor, rotary_scaling_factor, mscale, mscale_all_dim;
  std::optional<int64_t> rotary_seq_len_interpolation_factor;

  // The first model flag given ("" when none).
  std::string first_given() const;
  // Whether the flags give what Megatron requires of a model: --num-layers (or a hybrid pattern),
  // --hidden-size and --num-attention-heads. Such a command line builds its model from Megatron's
  // defaults; one that gives less adjusts the embedded default model.
  bool define_a_model() const;
};

// Registers the model flags on `command`, bound to `flags`.
void add_model_flags(CLI::App& command, ModelFlags& flags);

// Megatron's defaults as its flags give them: TransformerConfig's, except where a flag's default
// differs from the dataclass field's (--kv-lora-rank 32, --q-lora-rank None).
TransformerConfig megatron_flag_defaults();

// `base` with the given flags applied, as Megatron's argument handling applies them (aliases,
// --group-query-attention, --swiglu, ...). Errors name the flags that conflict.
TransformerConfig apply_model_flags(const ModelFlags& flags, TransformerConfig base);

}  // namespace strata::tools
