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
// Megatron's --position-embedding-type: a learned table added to the token embedding, rotary
// embeddings inside softmax attention, or neither (MLA and DSA rotate their own position part
// whatever this says, as in Megatron).
enum class PositionEmbeddingType { LearnedAbsolute, Rope, None };

std::string to_string(Normalization);
std::string to_string(Activation);
std::string to_string(PositionEmbeddingType);
// Parse "RMSNorm" / "LayerNorm", "silu" / "gelu" / "relu" / "squared_relu" and "learned_absolute"
// / "rope" / "none"; `field` names the setting in errors, which list the valid values.
Normalization parse_normalization(const std::string& value, const std::string& field);
Activation parse_activation(const std::string& value, const std::string& field);
PositionEmbeddingType parse_position_embedding_type(const std::string& value, const std::string& field);

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

// Every default is Megatron-Core's (TransformerConfig, MLATransformerConfig, GPTModel) under the
// same name; docs/megatron.md lists them and the few places strata differs. A size of 0 is
// Megatron's None: unset, and derived by derive_unset_fields where Megatron derives it.
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
  std::string experimental_attention_variant;  // "" (none), "gdn" (alias "gated_delta_net"), "gdn2" or "dsa"
  bool multi_latent_attention = false;         // without a pattern: MLA ('+') where a layer has standard attention
  // Deprecated in Megatron, kept for old scripts: without a pattern, a Mamba hybrid of num_layers
  // with these shares of attention and MLP layers (Megatron's pattern_from_ratios).
  double hybrid_attention_ratio = 0.0;
  double hybrid_mlp_ratio = 0.0;
  int64_t hidden_size = 0;
  int64_t ffn_hidden_size = 0;      // 0: 4 * hidden_size (with --swiglu's units: 8/3, to a multiple of 64)
  int64_t num_attention_heads = 0;
  int64_t num_query_groups = 0;  // key/value heads (GQA); 0: num_attention_heads (MHA)
  int64_t kv_channels = 0;       // per-head dimension; 0: hidden_size / num_attention_heads
  int64_t vocab_size = 0;

  // Position embedding (Megatron's GPTModel arguments, here so a checkpoint names them).
  PositionEmbeddingType position_embedding_type = PositionEmbeddingType::LearnedAbsolute;
  int64_t max_position_embeddings = 0;  // rows of the learned table (required by learned_absolute)

  // Normalisation.
  Normalization normalization = Normalization::LayerNorm;
  double layernorm_epsilon = 1e-5;
  bool layernorm_zero_centered_gamma = false;  // weight stored as w - 1 (norm multiplies by 1 + w)
  bool qk_layernorm = false;                   // RMS/LayerNorm over each head of q and k

  // Linear layers and activation.
  bool add_bias_linear = true;
  bool add_qkv_bias = false;       // the q/k/v projection's bias alone (add_bias_linear implies it)
  bool gated_linear_unit = false;  // fc1 holds [gate; up], act(gate) * up
  Activation activation_func = Activation::GELU;
  // With a gated linear unit: clamp the gate to at most this and the up half to [-this, this]
  // before act(gate) * up (Megatron's name; DeepSeek-V4's swiglu_limit). 0: no clamp.
  double activation_func_clamp_value = 0.0;

  // Rotary position embedding.
  double rotary_base = 10000.0;
  double rotary_percent = 1.0;  // fraction of each head's dimensions that rotate
  RotaryScaling rotary_scaling;  // scaled RoPE (YaRN, ...) of every rotary table, MLA's included

  // Regularisation and initialisation.
  double hidden_dropout = 0.1;
  double attention_dropout = 0.1;
  double init_method_std = 0.02;

  // Under bf16/fp16 autocast, whether the residual stream (mHC's n streams included) stays
  // float32, as in HF's models under autocast (true), or is kept in the autocast dtype (false:
  // Megatron's default with bf16 parameters). False halves the residual's memory traffic, which
  // dominates mHC's cost, at the price of bf16 rounding in every residual add.
  bool fp32_residual_connection = false;

  // Megatron's default ties them (--untie-embeddings-and-output-weights turns it off).
  bool share_embeddings_and_output_weights = true;

  // Softmax attention: sigmoid output gate per head and channel (Qwen3-Next); q_proj then holds
  // [query; gate] per head.
  bool attention_output_gate = false;

  // Gated DeltaNet (linear attention).
  int64_t linear_conv_kernel_dim = 4;
  int64_t linear_key_head_dim = 128;
  int64_t linear_value_head_dim = 128;
  int64_t linear_num_key_heads = 16;
  int64_t linear_num_value_heads = 32;
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
  int64_t q_lora_rank = 512;         // query latent width; 0: queries projected from the input directly
  int64_t kv_lora_rank = 512;        // key/value latent width
  int64_t qk_head_dim = 128;         // qk_nope_head_dim
  int64_t qk_pos_emb_head_dim = 64;  // qk_rope_head_dim: rotated by RoPE (rotary_base, rotary_scaling), all of it
  int64_t v_head_dim = 128;
  // DeepSeek sparse attention (pattern symbol D): a lightning indexer scores every earlier key
  // for each query and MLA attends to the dsa_indexer_topk best (HF's index_* names).
  int64_t dsa_indexer_n_heads = 0;
  int64_t dsa_indexer_head_dim = 0;  // its first qk_pos_emb_head_dim dimensions are rotated
  int64_t dsa_indexer_topk = 0;

  // DeepSeek-V4's shared-KV attention (pattern symbols W, C and H; strata's extension,
  // docs/layer_patterns.md; HF DeepSeek-V4's names in comments). One key/value head of
  // kv_channels channels is both key and value for all num_attention_heads query heads; queries
  // come from a q_lora_rank latent; RoPE rotates the last qk_pos_emb_head_dim channels of every
  // head in interleaved pairs; each head has a learned sink logit; every query sees the
  // sliding_window_size newest keys (itself included). C and H layers add compressed entries
  // (learned pooling of csa_compress_rate / hca_compress_rate tokens) rotated with
  // compress_rotary_base and compress_rotary_scaling, as are their raw keys; W layers rotate with
  // rotary_base. C layers read the dsa_indexer_topk entries a compressed lightning indexer
  // (dsa_indexer_n_heads heads of dsa_indexer_head_dim) picks. The heads' outputs project to the
  // hidden size through attention_output_groups groups of attention_output_lora_rank each.
  int64_t sliding_window_size = 0;          // sliding_window
  int64_t csa_compress_rate = 4;            // compress_rates.compressed_sparse_attention
  int64_t hca_compress_rate = 128;          // compress_rates.heavily_compressed_attention
  double compress_rotary_base = 160000.0;   // compress_rope_theta
  RotaryScaling compress_rotary_scaling;    // rope_parameters.compress
  int64_t attention_output_groups = 0;      // o_groups
  int64_t attention_output_lora_rank = 0;   // o_lora_rank

  // Mixture of experts (Megatron's moe_* names).
  int64_t num_moe_experts = 0;
  int64_t moe_router_topk = 2;
  int64_t moe_ffn_hidden_size = 0;  // 0: ffn_hidden_size
  int64_t moe_shared_expert_intermediate_size = 0;  // 0: no shared expert
  bool moe_shared_expert_gate = false;              // sigmoid(x . w) scales the shared expert (Qwen)
  std::string moe_router_score_function = "softmax";  // "softmax", "sigmoid" or "sqrtsoftplus" (DeepSeek-V4)
  bool moe_router_norm_topk_prob = true;            // renormalise the top-k weights to sum to 1
  double moe_router_topk_scaling_factor = 1.0;      // multiplies the routed weights (DeepSeek)
  bool moe_router_enable_expert_bias = false;       // aux-loss-free balancing bias (DeepSeek-V3)
  double moe_aux_loss_coeff = 0.0;                  // load-balancing loss weight
  // DeepSeek-V4's hash routing (HF's mlp_layer_types "hash_moe"; strata's extension, Megatron has
  // none): the MoE layers at these canonical indices (0-based, as decoder.layers.<i> in
  // checkpoints; main-decoder 'E' layers only) take each token's experts from a fixed token-id
  // table, router.tid2eid [vocab_size, moe_router_topk], instead of the top k of its scores
  // (layers/hash_router.h). Empty: every MoE layer routes by score.
  std::vector<int64_t> moe_hash_routed_layers;

  // Manifold-constrained hyper-connections (mHC; Megatron's names, DeepSeek-V4's hc_* in
  // comments): every layer's residual is a HyperConnection over mhc_num_residual_streams
  // streams. See docs/hyper_connections.md.
  bool enable_mhc_connections = false;
  int64_t mhc_num_residual_streams = 4;   // hc_mult
  int64_t mhc_sinkhorn_iterations = 20;   // hc_sinkhorn_iters
  double mhc_eps = 1e-6;                  // hc_eps: floor of pre, Sinkhorn's denominators (strata's)
  double mhc_init_gating_factor = 0.01;   // initial scale (alpha) of the maps
  // Megatron's recompute block size for the maps (0: None, one block). strata reruns each
  // hyper-connection's maps in its own backward, the finest block there is: the field is checked
  // as Megatron checks it and changes neither results nor what strata keeps.
  int64_t mhc_recompute_layer_num = 0;

  // Activation recompute (Megatron's recompute_* fields). "full" recomputes whole layers in
  // backward: with recompute_method "uniform", groups of recompute_num_layers consecutive layers
  // (strata's default when no method is given: each layer alone); with "block", the first
  // recompute_num_layers layers of each pipeline stage, each alone. "selective" recomputes the
  // recompute_modules; strata implements "mhc" (each hyper-connection's maps).
  std::string recompute_granularity;  // "", "full" or "selective"
  std::string recompute_method;       // "", "uniform" or "block"
  int64_t recompute_num_layers = 0;   // 0: unset
  std::vector<std::string> recompute_modules = {"core_attn"};

  // Multi-token prediction (Megatron's names; DeepSeek-V3's MTP): depth d (1-based) predicts
  // the token d + 1 positions ahead from the previous depth's hidden states and the embedding of
  // the token d positions ahead. A hybrid pattern's MTP part (after '/') sets the depths and their
  // layers; a model without a pattern repeats its last layer's kinds in mtp_num_layers depths.
  int64_t mtp_num_layers = 0;            // 0: no MTP (Megatron: None)
  double mtp_loss_scaling_factor = 0.1;  // the mean of the depths' losses is scaled by this

  int64_t rotary_dim() const;  // kv_channels * rotary_percent, rounded down to an even number
  int64_t mamba_heads() const;  // mamba_num_heads, or the number expand = 2 gives when it is 0
  bool recomputes_mhc() const;  // selective recompute with "mhc" among the modules
};

// Fills the sizes left 0 (Megatron's None) as Megatron derives them: ffn_hidden_size = 4 *
// hidden_size, or int(8 * hidden_size / 3 / 64) * 64 for a SiLU gated linear unit (--swiglu);
// kv_channels = hidden_size / num_attention_heads; num_query_groups = num_attention_heads;
// moe_ffn_hidden_size = ffn_hidden_size when there are experts. Errors name the field that cannot
// be derived and why.
void derive_unset_fields(TransformerConfig& config);

// Checks the fields are consistent; errors name the field, its value and what was expected.
// Sizes left 0 are errors here: derive_unset_fields fills them first.
void validate(const TransformerConfig& config);
// The layer allocation fields alone (experimental_attention_variant, the frequencies, the ratios;
// validate() runs it).
void validate_layer_allocation(const TransformerConfig& config);
// experimental_attention_variant gdn (or its alias gated_delta_net) or gdn2: Megatron's linear attention,
// built as Gated DeltaNet or, under gdn2, Gated DeltaNet-2 (the 'G' layers and linear_attention_freq's).
bool is_linear_attention_variant(const std::string& variant);
// The mamba_* fields alone (validate() runs it when the layer pattern has an M).
void validate_mamba(const TransformerConfig& config);
// The MLA fields (validate() runs it when the model has MLA or DSA layers, '+' or 'D'), and with
// `sparse` the dsa_indexer_* fields too (a D).
void validate_latent_attention(const TransformerConfig& config, bool sparse);
// The shared-KV attention fields (validate() runs it when the model has a W, C or H layer), and
// with `indexed` the dsa_indexer_* fields too (a C).
void validate_shared_kv_attention(const TransformerConfig& config, bool indexed);

}  // namespace strata
