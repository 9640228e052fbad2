#pragma once
// TransformerConfig: the model's shape and numerics. Field names follow Megatron-Core's
// TransformerConfig where it has one, so a Megatron user recognises every knob.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "strata/core/rotary_scaling.h"

namespace strata {

enum class Normalization { RMSNorm, LayerNorm };
enum class Activation { SiLU, GELU, ReLU, SquaredReLU };

std::string to_string(Normalization);
std::string to_string(Activation);
// Parse "RMSNorm" / "LayerNorm" and "silu" / "gelu" / "relu" / "squared_relu"; `field` names the
// setting in errors, which list the valid values.
Normalization parse_normalization(const std::string& value, const std::string& field);
Activation parse_activation(const std::string& value, const std::string& field);

// Megatron's per-layer frequency settings (linear_attention_freq, moe_layer_freq): an integer N
// or one 0/1 entry per layer; unset when neither is given (core/layer_frequency.h reads text).
struct LayerFrequency {
  std::optional<int64_t> every;
  std::vector<int64_t> explicit_list;
  bool is_set() const { return every || !explicit_list.empty(); }
  bool operator==(const LayerFrequency&) const = default;
};

// The most layers a model may have: far beyond any trained model (hundreds), and low enough that a
// typo such as 10^9 is refused at once instead of after minutes of building.
constexpr int64_t kMaxLayers = 10'000;

struct TransformerConfig {
  // Shape.
  // With hybrid_layer_pattern: the number of pattern symbols (Megatron's hybrid models; the
  // pattern's count wins, model/layer_allocation.h). Without: the number of attention+MLP layers,
  // each mixer chosen by the settings below (GPT models).
  int64_t num_layers = 0;
  std::string hybrid_layer_pattern;
  // Without a pattern, as in Megatron: a Gated DeltaNet layer where linear_attention_freq says so,
  // only when experimental_attention_variant is gdn (ignored otherwise); a MoE layer where
  // moe_layer_freq says so (default 1: every layer), only when num_moe_experts is set.
  LayerFrequency linear_attention_freq;
  LayerFrequency moe_layer_freq{.every = 1};

  // Layer allocation (model/layer_allocation.h, docs/layer_patterns.md; Megatron's names and defaults).
  std::string experimental_attention_variant;  // "" (none), "gdn" (alias "gated_delta_net") or "dsa"
  bool multi_latent_attention = false;         // without a pattern: MLA ('+') where a layer has standard attention
  // Deprecated in Megatron, kept for old scripts: without a pattern, a Mamba hybrid of num_layers
  // with these shares of attention and MLP layers (Megatron's pattern_from_ratios).
  double hybrid_attention_ratio = 0.0;
  double hybrid_mlp_ratio = 0.0;
  int64_t hidden_size = 0;
  int64_t ffn_hidden_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_query_groups = 0;  // key/value heads (GQA); equal to num_attention_heads for MHA
  int64_t kv_channels = 0;       // per-head dimension
  int64_t vocab_size = 0;

  // Normalisation.
  Normalization normalization = Normalization::RMSNorm;
  double layernorm_epsilon = 1e-5;
  bool layernorm_zero_centered_gamma = false;  // weight stored as w - 1 (norm multiplies by 1 + w)
  bool qk_layernorm = false;                   // RMS/LayerNorm over each head of q and k

  // Linear layers and activation.
  bool add_bias_linear = false;
  bool add_qkv_bias = false;
  bool gated_linear_unit = true;  // fc1 holds [gate; up], act(gate) * up
  Activation activation_func = Activation::SiLU;

  // Rotary position embedding.
  double rotary_base = 10000.0;
  double rotary_percent = 1.0;  // fraction of each head's dimensions that rotate
  RotaryScaling rotary_scaling;  // scaled RoPE (YaRN, ...) of every rotary table, MLA's included

  // Regularisation and initialisation.
  double hidden_dropout = 0.0;
  double attention_dropout = 0.0;
  double init_method_std = 0.02;

  // Under bf16/fp16 autocast, whether the residual stream (mHC's n streams included) stays
  // float32, as in HF's models under autocast (true), or is kept in the autocast dtype (false:
  // Megatron's default with bf16 parameters). False halves the residual's memory traffic, which
  // dominates mHC's cost, at the price of bf16 rounding in every residual add.
  bool fp32_residual_connection = true;

  bool share_embeddings_and_output_weights = false;

  // Softmax attention: sigmoid output gate per head and channel (Qwen3-Next); q_proj then holds
  // [query; gate] per head.
  bool attention_output_gate = false;

  // Gated DeltaNet (linear attention).
  int64_t linear_conv_kernel_dim = 4;
  int64_t linear_key_head_dim = 0;
  int64_t linear_value_head_dim = 0;
  int64_t linear_num_key_heads = 0;
  int64_t linear_num_value_heads = 0;
  int64_t linear_chunk_size = 64;  // chunk length of the chunked delta rule (training / prefill)

  // Mamba2 (pattern symbol M; Megatron's mamba_* names, HF Nemotron-H's in comments). Checked
  // by validate() when the layer pattern has an M, and by the mixer itself.
  int64_t mamba_num_heads = 0;      // 0: 2 * hidden_size / mamba_head_dim (Megatron's expand = 2)
  int64_t mamba_head_dim = 64;
  int64_t mamba_state_dim = 128;    // ssm_state_size (N)
  int64_t mamba_num_groups = 8;     // n_groups: B and C are shared by heads / groups consecutive heads
  int64_t mamba_chunk_size = 128;   // chunk length of the chunked SSD (training / prefill)
  int64_t mamba_conv_kernel_dim = 4;  // conv_kernel
  bool mamba_conv_bias = true;        // use_conv_bias
  bool mamba_proj_bias = false;       // bias of in_proj and out_proj (HF's use_bias)
  // dt_bias is initialised so that softplus(dt_bias) is log-uniform in [min, max], floored at
  // mamba_time_step_floor (Mamba2's initialisation).
  double mamba_time_step_min = 0.001;
  double mamba_time_step_max = 0.1;
  double mamba_time_step_floor = 1e-4;
  // Every forward clamps the step size dt to [limit_min, limit_max] (HF's time_step_limit);
  // limit_max may be infinite (JSON null).
  double mamba_time_step_limit_min = 0.0;
  double mamba_time_step_limit_max = std::numeric_limits<double>::infinity();

  // Multi-head latent attention (pattern symbols + and D; Megatron's MLATransformerConfig names,
  // HF DeepSeek's in comments). Queries and keys are [content (qk_head_dim) | position
  // (qk_pos_emb_head_dim)] per head; the position part of the key is one vector shared by all
  // heads. The softmax scale is 1 / sqrt(qk_head_dim + qk_pos_emb_head_dim), times
  // yarn_mscale(factor, mscale_all_dim)^2 under YaRN with mscale_all_dim (rotary_frequencies.h).
  // Checked by validate() when the model has a + or a D layer, and by the mixer itself.
  int64_t q_lora_rank = 0;           // query latent width; 0: queries projected from the input directly
  int64_t kv_lora_rank = 0;          // key/value latent width
  int64_t qk_head_dim = 0;           // qk_nope_head_dim
  int64_t qk_pos_emb_head_dim = 0;   // qk_rope_head_dim: rotated by RoPE (rotary_base, rotary_scaling), all of it
  int64_t v_head_dim = 0;
  // DeepSeek sparse attention (pattern symbol D): a lightning indexer scores every earlier key
  // for each query and MLA attends to the dsa_indexer_topk best (HF's index_* names).
  int64_t dsa_indexer_n_heads = 0;
  int64_t dsa_indexer_head_dim = 0;  // its first qk_pos_emb_head_dim dimensions are rotated
  int64_t dsa_indexer_topk = 0;

  // Mixture of experts (Megatron's moe_* names).
  int64_t num_moe_experts = 0;
  int64_t moe_router_topk = 2;
  int64_t moe_ffn_hidden_size = 0;
  int64_t moe_shared_expert_intermediate_size = 0;  // 0: no shared expert
  bool moe_shared_expert_gate = false;              // sigmoid(x . w) scales the shared expert (Qwen)
  std::string moe_router_score_function = "softmax";  // "softmax" or "sigmoid"
  bool moe_router_norm_topk_prob = true;            // renormalise the top-k weights to sum to 1
  double moe_router_topk_scaling_factor = 1.0;      // multiplies the routed weights (DeepSeek)
  bool moe_router_enable_expert_bias = false;       // aux-loss-free balancing bias (DeepSeek-V3)
  double moe_aux_loss_coeff = 0.0;                  // load-balancing loss weight

  // Manifold-constrained hyper-connections (mHC; Megatron's names, DeepSeek-V4's hc_* in
  // comments): every layer's residual is a HyperConnection over num_residual_streams streams.
  // See docs/hyper_connections.md.
  bool enable_hyper_connections = false;
  int64_t num_residual_streams = 4;       // hc_mult
  int64_t mhc_sinkhorn_iterations = 20;   // hc_sinkhorn_iters
  double mhc_eps = 1e-6;                  // hc_eps: floor of pre, Sinkhorn's denominators
  double mhc_init_gating_factor = 0.01;   // initial scale (alpha) of the maps
  // The first N TransformerLayers of each pipeline stage recompute their mHC maps in backward
  // instead of storing them (Megatron's recompute_method "block" counting; 0: none).
  int64_t mhc_recompute_num_layers = 0;

  // Multi-token prediction (Megatron's names; DeepSeek-V3's MTP): depth d (1-based) predicts
  // the token d + 1 positions ahead from the previous depth's hidden states and the embedding of
  // the token d positions ahead. A hybrid pattern's MTP part (after '/') sets the depths and their
  // layers; a model without a pattern repeats its last layer's kinds in mtp_num_layers depths.
  int64_t mtp_num_layers = 0;            // 0: no MTP (Megatron: None)
  double mtp_loss_scaling_factor = 0.1;  // the mean of the depths' losses is scaled by this

  int64_t rotary_dim() const;  // kv_channels * rotary_percent, rounded down to an even number
  int64_t mamba_heads() const;  // mamba_num_heads, or the number expand = 2 gives when it is 0
};

// Checks the fields are consistent; errors name the field, its value and what was expected.
void validate(const TransformerConfig& config);
// The layer allocation fields alone (experimental_attention_variant, the frequencies, the ratios;
// validate() runs it).
void validate_layer_allocation(const TransformerConfig& config);
// experimental_attention_variant gdn or its alias gated_delta_net: Megatron's linear attention.
bool is_linear_attention_variant(const std::string& variant);
// The mamba_* fields alone (validate() runs it when the layer pattern has an M).
void validate_mamba(const TransformerConfig& config);
// The MLA fields (validate() runs it when the model has MLA or DSA layers, '+' or 'D'), and with
// `sparse` the dsa_indexer_* fields too (a D).
void validate_latent_attention(const TransformerConfig& config, bool sparse);

}  // namespace strata
