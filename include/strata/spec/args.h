#pragma once
// Argument structs: what a parent module passes to the builders of its slots. A parent always
// passes the full struct; a module that needs less is wrapped by an adapter (see
// Mlp::as_mlp_submodule) instead of the parent special-casing it.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "strata/core/config.h"
#include "strata/parallel/process_groups.h"

namespace strata {

// What TransformerLayer passes to every layer-level slot (mixers, bias-dropout-add, residual).
struct LayerArgs {
  std::shared_ptr<const TransformerConfig> config;
  // Global, 1-based, as in Megatron; counts unfused layers: a fused layer's channel half is built
  // with the number after its sequence half's. MTP layers number each depth from 1 again.
  int64_t layer_number = 1;
  bool is_mtp_layer = false;  // a multi-token-prediction depth's layer
  std::optional<int64_t> ffn_hidden_size;  // overrides config.ffn_hidden_size (MoE experts, MTP)
  bool is_expert = false;
  ProcessGroups pg;
};

// What a parent passes to a norm slot.
struct NormArgs {
  std::shared_ptr<const TransformerConfig> config;
  int64_t hidden_size = 0;
  double eps = 1e-5;
};

// What a parent passes to a column-parallel linear slot (linear_qkv, linear_fc1): the output
// dimension is split across tensor-parallel ranks.
struct ColumnLinearArgs {
  std::shared_ptr<const TransformerConfig> config;
  int64_t input_size = 0;
  int64_t output_size = 0;  // full size, before the tensor-parallel split
  bool bias = false;
  bool gather_output = false;
  bool skip_bias_add = false;  // return the bias separately so bias-dropout-add can fuse it
  bool is_expert = false;
  double init_std = 0.02;
  std::string name;  // the slot's name, for errors and communication buffers
  ProcessGroups pg;
};

// What a parent passes to a row-parallel linear slot (linear_proj, linear_fc2): the input
// dimension is split across tensor-parallel ranks and the outputs are summed.
struct RowLinearArgs {
  std::shared_ptr<const TransformerConfig> config;
  int64_t input_size = 0;  // full size, before the tensor-parallel split
  int64_t output_size = 0;
  bool bias = false;
  bool input_is_parallel = true;
  bool skip_bias_add = false;
  bool is_expert = false;
  double init_std = 0.02;
  std::string name;
  ProcessGroups pg;
};

enum class AttnMaskType { causal, no_mask };

// What an attention module passes to its core_attention slot.
struct CoreAttentionArgs {
  std::shared_ptr<const TransformerConfig> config;
  int64_t layer_number = 1;
  AttnMaskType attn_mask_type = AttnMaskType::causal;
  int64_t num_heads = 0;      // query heads on this rank
  int64_t num_kv_heads = 0;   // key/value heads on this rank
  int64_t head_dim = 0;
  std::optional<double> softmax_scale;  // default 1/sqrt(head_dim)
  ProcessGroups pg;
};

}  // namespace strata
