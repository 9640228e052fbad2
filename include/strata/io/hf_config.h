#pragma once
// HF config.json read into typed configs, one struct per architecture strata knows. The structs
// hold what building the model needs (shapes, layer schedules, activations, norms, routing, and
// the initialisation parameters strata's layers take); generation, serving and HF bookkeeping
// fields are left out.
//
// Both spellings HF has used are read: transformers 5 (rope_parameters, layer_types, ...) and the
// older top-level fields released checkpoints still ship (rope_theta, rope_scaling,
// full_attention_interval, hybrid_override_pattern, compress_ratios, ...). Where both are
// present the transformers 5 one wins. Sizes that only a kind of layer the model lacks would use
// (Nemotron-H's MoE sizes in a model without MoE layers, ...) may be absent and then read 0.
// Every error names the file and the field.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace strata::io {

// One RoPE. rope_type is HF's name ("default", "linear", "yarn", "llama3", "dynamic", ...), so a
// builder must reject any type it does not implement. The scaling fields are read whatever the
// type, each unset where the file leaves it out; the fields a type needs must be present (linear:
// factor; llama3: factor, low_freq_factor, high_freq_factor). As in HF's standardize_rope_params,
// a yarn, llama3 or longrope original_max_position_embeddings comes from the top level where the
// file has it there, else from the RoPE's own fields, else from max_position_embeddings; a yarn
// factor left out is max_position_embeddings over it, as HF derives a null one.
struct RopeParameters {
  double rope_theta = 10000.0;
  std::string rope_type = "default";
  double partial_rotary_factor = 1.0;
  std::string origin;  // the object the type and scaling came from: "rope_parameters", "rope_scaling" or none
  std::optional<double> factor, attention_factor, beta_fast, beta_slow, mscale, mscale_all_dim, low_freq_factor,
      high_freq_factor;
  std::optional<int64_t> original_max_position_embeddings;
  std::optional<bool> truncate;
};

struct Qwen3Config {
  int64_t vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
      head_dim;
  double rms_norm_eps;
  RopeParameters rope;
  bool tie_word_embeddings;
  bool attention_bias;
  std::string hidden_act;
};

// Qwen3-Next: Gated DeltaNet ("linear_attention") and gated full-attention layers, each followed
// by a MoE block, or by a dense MLP of base.intermediate_size on the layers in mlp_only_layers.
struct Qwen3NextConfig {
  // The shape shared with Qwen3: embeddings, attention, the dense MLP, norms, RoPE.
  Qwen3Config base;
  std::vector<std::string> layer_types;  // "linear_attention" | "full_attention", one per layer
  int64_t linear_conv_kernel_dim, linear_key_head_dim, linear_value_head_dim, linear_num_key_heads,
      linear_num_value_heads;
  int64_t num_experts, num_experts_per_tok, moe_intermediate_size, shared_expert_intermediate_size, decoder_sparse_step;
  bool norm_topk_prob;
  std::vector<int64_t> mlp_only_layers;
  double router_aux_loss_coef;
};

// Nemotron-H: one mixer per layer (no positional encoding anywhere), each behind an RMSNorm.
struct NemotronHConfig {
  int64_t vocab_size, hidden_size;
  // "linear_attention" (Mamba-2), "full_attention", "mlp" or "moe"; its length is the layer count.
  std::vector<std::string> layers_block_type;
  double layer_norm_epsilon;
  bool tie_word_embeddings;
  // Attention layers.
  int64_t num_attention_heads, num_key_value_heads, head_dim;
  bool attention_bias;
  // Mamba-2 layers: inner size mamba_num_heads * mamba_head_dim.
  int64_t mamba_num_heads, mamba_head_dim, n_groups, ssm_state_size, conv_kernel, chunk_size, expand;
  std::string mamba_hidden_act;
  bool use_conv_bias;
  bool mamba_proj_bias;
  bool use_bias;  // HF's Mamba-2 mixer takes the in_proj / out_proj bias from this one
  double time_step_min, time_step_max, time_step_floor;  // dt_bias initialisation
  std::pair<double, double> time_step_limit;             // dt clamp; the upper end is often +inf
  // MLP layers (up_proj -> activation -> down_proj, no gate).
  int64_t intermediate_size;
  std::string mlp_hidden_act;
  bool mlp_bias;
  // MoE layers: DeepSeek-V3-style grouped sigmoid routing over ungated experts.
  int64_t n_routed_experts, n_shared_experts, num_experts_per_tok, moe_intermediate_size,
      moe_shared_expert_intermediate_size, n_group, topk_group;
  std::optional<int64_t> moe_latent_size;  // experts run in this width when set
  bool norm_topk_prob;
  double routed_scaling_factor;

  int64_t num_hidden_layers() const { return int64_t(layers_block_type.size()); }
};

// DeepSeek-V3.2: MLA attention with the DSA lightning indexer on every layer, MoE after the
// first dense layers.
struct DeepseekV32Config {
  int64_t vocab_size, hidden_size, num_hidden_layers, num_attention_heads;
  double rms_norm_eps;
  bool tie_word_embeddings;
  std::string hidden_act;
  std::vector<std::string> layer_types;  // "deepseek_sparse_attention", one per layer
  // MLA.
  int64_t q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim;
  bool attention_bias;
  RopeParameters rope;  // applies to the qk_rope_head_dim slice
  // DSA indexer.
  int64_t index_n_heads, index_head_dim, index_topk;
  // Dense MLP layers.
  int64_t intermediate_size;
  bool mlp_bias;
  // MoE.
  int64_t n_routed_experts, n_shared_experts, num_experts_per_tok, moe_intermediate_size, n_group, topk_group,
      first_k_dense_replace;
  double routed_scaling_factor;
  bool norm_topk_prob;
  std::vector<std::string> mlp_layer_types;  // "dense" | "sparse", one per layer
  // Multi-token prediction layers, stored after the last decoder layer (model.layers.<n>.*, which
  // HF transformers drops on load); strata builds them when the checkpoint holds them.
  int64_t num_nextn_predict_layers;
};

// DeepSeek-V4: hyper-connections around every layer, shared-KV attention with a sliding-window
// branch plus, on compressed layers, a compressed (and for CSA indexer-selected) branch; grouped
// low-rank output projection; MoE on every layer.
struct DeepseekV4Config {
  int64_t vocab_size, hidden_size, num_hidden_layers;
  double rms_norm_eps;
  bool tie_word_embeddings;
  std::string hidden_act;
  // Hyper-connections.
  int64_t hc_mult, hc_sinkhorn_iters;
  double hc_eps;
  // Attention.
  std::vector<std::string> layer_types;           // "sliding_attention" | "compressed_sparse_attention" |
                                                  // "heavily_compressed_attention", one per layer
  std::map<std::string, int64_t> compress_rates;  // tokens per compressed entry, by layer type
  int64_t num_attention_heads, num_key_value_heads, head_dim, qk_rope_head_dim, q_lora_rank, o_groups, o_lora_rank,
      sliding_window;
  bool attention_bias;
  RopeParameters main_rope;      // the sliding-window branch
  RopeParameters compress_rope;  // the compressed branches
  // Lightning indexer (compressed_sparse_attention layers).
  int64_t index_n_heads, index_head_dim, index_topk;
  // MoE.
  std::vector<std::string> mlp_layer_types;  // "hash_moe" | "moe", one per layer
  int64_t n_routed_experts, n_shared_experts, num_experts_per_tok, moe_intermediate_size;
  std::string scoring_func;  // "sqrtsoftplus" | "softmax" | "sigmoid"
  bool norm_topk_prob;
  double routed_scaling_factor, swiglu_limit, router_aux_loss_coef;
  bool mlp_bias;
};

using HfConfig = std::variant<Qwen3Config, Qwen3NextConfig, NemotronHConfig, DeepseekV32Config, DeepseekV4Config>;

std::string_view model_type(const HfConfig& config);  // "qwen3", "qwen3_next", ... as HF spells it
// `source` (the file) is named in every error.
HfConfig parse_hf_config(const nlohmann::json& json, const std::string& source);
HfConfig read_hf_config(const std::filesystem::path& config_json);

}  // namespace strata::io
