#include "strata/core/config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "strata/core/error.h"

namespace strata {

std::string to_string(Normalization n) { return n == Normalization::RMSNorm ? "RMSNorm" : "LayerNorm"; }

std::string to_string(Activation a) {
  switch (a) {
    case Activation::SiLU: return "silu";
    case Activation::GELU: return "gelu";
    case Activation::ReLU: return "relu";
    case Activation::SquaredReLU: return "squared_relu";
  }
  return "?";
}

std::string to_string(PositionEmbeddingType p) {
  switch (p) {
    case PositionEmbeddingType::LearnedAbsolute: return "learned_absolute";
    case PositionEmbeddingType::Rope: return "rope";
    case PositionEmbeddingType::None: return "none";
  }
  return "?";
}

Normalization parse_normalization(const std::string& value, const std::string& field) {
  if (value == "RMSNorm") return Normalization::RMSNorm;
  if (value == "LayerNorm") return Normalization::LayerNorm;
  fail(field, ": unknown normalization '", value, "' (expected RMSNorm or LayerNorm)");
}

Activation parse_activation(const std::string& value, const std::string& field) {
  for (auto a : {Activation::SiLU, Activation::GELU, Activation::ReLU, Activation::SquaredReLU})
    if (to_string(a) == value) return a;
  fail(field, ": unknown activation '", value, "' (expected silu, gelu, relu or squared_relu)");
}

PositionEmbeddingType parse_position_embedding_type(const std::string& value, const std::string& field) {
  for (auto p : {PositionEmbeddingType::LearnedAbsolute, PositionEmbeddingType::Rope, PositionEmbeddingType::None})
    if (to_string(p) == value) return p;
  fail(field, ": unknown position embedding type '", value, "' (expected learned_absolute, rope or none)");
}

int64_t TransformerConfig::rotary_dim() const {
  auto dim = static_cast<int64_t>(static_cast<double>(kv_channels) * rotary_percent);
  return dim - dim % 2;
}

namespace {
void require_positive(int64_t value, const char* field) {
  if (value <= 0) fail("TransformerConfig.", field, " = ", value, ": expected a positive value");
}

void require_finite_at_least(double value, double min, const char* field) {
  if (!std::isfinite(value) || value < min)
    fail("TransformerConfig.", field, " = ", value, ": expected a finite value >= ", min);
}

void require_finite_positive(double value, const char* field) {
  if (!std::isfinite(value) || value <= 0.0)
    fail("TransformerConfig.", field, " = ", value, ": expected a finite value > 0");
}

void validate_gated_delta_net(const TransformerConfig& c) {
  require_positive(c.linear_key_head_dim, "linear_key_head_dim");
  require_positive(c.linear_value_head_dim, "linear_value_head_dim");
  require_positive(c.linear_num_key_heads, "linear_num_key_heads");
  require_positive(c.linear_num_value_heads, "linear_num_value_heads");
  require_positive(c.linear_conv_kernel_dim, "linear_conv_kernel_dim");
  require_positive(c.linear_chunk_size, "linear_chunk_size");
  // Checked here as well as by the layer, so a bad config is refused before the run's memory is
  // estimated and its model built.
  if (c.linear_num_value_heads % c.linear_num_key_heads != 0)
    fail("TransformerConfig.linear_num_value_heads = ", c.linear_num_value_heads,
         ": must be a multiple of linear_num_key_heads = ", c.linear_num_key_heads);
}

void validate_moe(const TransformerConfig& c) {
  require_positive(c.num_moe_experts, "num_moe_experts");
  require_positive(c.moe_ffn_hidden_size, "moe_ffn_hidden_size");
  if (c.moe_router_topk < 1 || c.moe_router_topk > c.num_moe_experts)
    fail("TransformerConfig.moe_router_topk = ", c.moe_router_topk, ": expected 1 to num_moe_experts = ",
         c.num_moe_experts);
  if (c.moe_shared_expert_intermediate_size < 0)
    fail("TransformerConfig.moe_shared_expert_intermediate_size = ", c.moe_shared_expert_intermediate_size,
         ": expected a positive value, or 0 for no shared expert");
  if (c.moe_router_score_function != "softmax" && c.moe_router_score_function != "sigmoid" &&
      c.moe_router_score_function != "sqrtsoftplus")
    fail("TransformerConfig.moe_router_score_function = '", c.moe_router_score_function,
         "': expected softmax, sigmoid or sqrtsoftplus");
  if (c.moe_shared_expert_gate && c.moe_shared_expert_intermediate_size == 0)
    fail("TransformerConfig.moe_shared_expert_gate = true: there is no shared expert to gate ",
         "(moe_shared_expert_intermediate_size = 0)");
  require_finite_positive(c.moe_router_topk_scaling_factor, "moe_router_topk_scaling_factor");
  require_finite_at_least(c.moe_aux_loss_coeff, 0.0, "moe_aux_loss_coeff");
  const auto& hashed = c.moe_hash_routed_layers;
  for (size_t i = 0; i < hashed.size(); ++i) {
    if (hashed[i] < 0 || hashed[i] >= c.num_layers)
      fail("TransformerConfig.moe_hash_routed_layers[", i, "] = ", hashed[i],
           ": expected a canonical layer index in [0, num_layers = ", c.num_layers, ")");
    if (std::find(hashed.begin(), hashed.begin() + static_cast<std::ptrdiff_t>(i), hashed[i]) !=
        hashed.begin() + static_cast<std::ptrdiff_t>(i))
      fail("TransformerConfig.moe_hash_routed_layers[", i, "] = ", hashed[i], ": the layer is listed twice");
  }
}

void require_frequency(const LayerFrequency& f, const char* field) {
  if (f.every && *f.every < 1)
    fail("TransformerConfig.", field, " = ", *f.every, ": expected a positive integer N (every N-th layer) or a list");
  for (size_t i = 0; i < f.explicit_list.size(); ++i)
    if (f.explicit_list[i] != 0 && f.explicit_list[i] != 1)
      fail("TransformerConfig.", field, "[", i, "] = ", f.explicit_list[i], ": expected 0 or 1");
}

// Which kinds of layer the config has, from its pattern or, without one, as
// model/layer_allocation.h places them. A ratio config is taken to have Mamba2 layers (only ratios
// that leave none would not).
struct KindsInUse {
  bool mamba, gated_delta_net, latent_attention, sparse_attention, moe, shared_kv_attention, compressed_indexer;
};

KindsInUse kinds_in_use(const TransformerConfig& c) {
  const auto& p = c.hybrid_layer_pattern;
  const bool ratios = c.hybrid_attention_ratio > 0.0 || c.hybrid_mlp_ratio > 0.0;
  if (!p.empty() || ratios)
    return {.mamba = p.find('M') != std::string::npos || (p.empty() && ratios),
            .gated_delta_net = p.find('G') != std::string::npos || is_linear_attention_variant(c.experimental_attention_variant),
            .latent_attention = p.find_first_of("+AD") != std::string::npos,
            .sparse_attention = p.find('D') != std::string::npos,
            .moe = p.find('E') != std::string::npos || c.num_moe_experts != 0,
            .shared_kv_attention = p.find_first_of("WCH") != std::string::npos,
            .compressed_indexer = p.find('C') != std::string::npos};
  const bool sparse = c.experimental_attention_variant == "dsa";
  return {.mamba = false,
          .gated_delta_net = is_linear_attention_variant(c.experimental_attention_variant),
          .latent_attention = sparse || c.multi_latent_attention,
          .sparse_attention = sparse,
          .moe = c.num_moe_experts != 0,
          .shared_kv_attention = false,
          .compressed_indexer = false};
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// Megatron's checks of the recompute_* fields, and what strata implements of them.
void validate_recompute(const TransformerConfig& c) {
  const auto& granularity = c.recompute_granularity;
  if (granularity != "" && granularity != "full" && granularity != "selective")
    fail("TransformerConfig.recompute_granularity = '", granularity, "': expected full, selective or empty (none)");
  if (c.recompute_method != "" && c.recompute_method != "uniform" && c.recompute_method != "block")
    fail("TransformerConfig.recompute_method = '", c.recompute_method, "': expected uniform, block or empty");
  if (!c.recompute_method.empty() && granularity != "full")
    fail("TransformerConfig.recompute_method = '", c.recompute_method,
         "': applies to recompute_granularity full, not '", granularity, "'");
  if (c.recompute_method == "uniform" && c.recompute_num_layers < 1)
    fail("TransformerConfig.recompute_num_layers = ", c.recompute_num_layers,
         ": recompute_method uniform recomputes groups of this many layers; expected at least 1");
  if (c.recompute_num_layers < 0)
    fail("TransformerConfig.recompute_num_layers = ", c.recompute_num_layers, ": expected a value >= 0");
  if (c.recompute_num_layers != 0 && c.recompute_method.empty())
    fail("TransformerConfig.recompute_num_layers = ", c.recompute_num_layers,
         ": needs recompute_method uniform or block (recompute_granularity full)");
  if (granularity != "selective") return;
  for (const auto& module : c.recompute_modules)
    if (module != "mhc")
      fail("TransformerConfig.recompute_modules holds '", module, "': strata recomputes only 'mhc' selectively ",
           "(use recompute_granularity full for whole layers)");
  if (contains(c.recompute_modules, "mhc") && !c.enable_mhc_connections)
    fail("TransformerConfig.recompute_modules holds 'mhc' but enable_mhc_connections is false: there are no ",
         "hyper-connections to recompute");
}
}  // namespace

bool is_linear_attention_variant(const std::string& variant) {
  return variant == "gdn" || variant == "gated_delta_net" || variant == "gdn2";
}

void validate_layer_allocation(const TransformerConfig& c) {
  const auto& variant = c.experimental_attention_variant;
  if (!variant.empty() && variant != "dsa" && !is_linear_attention_variant(variant))
    fail("TransformerConfig.experimental_attention_variant = '", variant,
         "': expected gdn, gdn2, dsa, gated_delta_net (an alias of gdn) or none");
  // Megatron asserts it for gdn whether or not a pattern places the layers; gdn2 may select only
  // the layers of a pattern's 'G's (pattern_from_frequencies needs it without a pattern).
  if (is_linear_attention_variant(variant) && variant != "gdn2" && !c.linear_attention_freq.is_set())
    fail("TransformerConfig.experimental_attention_variant = '", variant,
         "' needs linear_attention_freq (which layers are Gated DeltaNet), as in Megatron");
  require_frequency(c.linear_attention_freq, "linear_attention_freq");
  require_frequency(c.moe_layer_freq, "moe_layer_freq");
  for (auto [ratio, name] :
       {std::pair{c.hybrid_attention_ratio, "hybrid_attention_ratio"}, {c.hybrid_mlp_ratio, "hybrid_mlp_ratio"}})
    if (!(ratio >= 0.0 && ratio <= 1.0)) fail("TransformerConfig.", name, " = ", ratio, ": expected a value in [0, 1]");
  if (c.hybrid_attention_ratio + c.hybrid_mlp_ratio > 1.0)
    fail("TransformerConfig.hybrid_attention_ratio + hybrid_mlp_ratio = ", c.hybrid_attention_ratio, " + ",
         c.hybrid_mlp_ratio, ": expected at most 1");
  if ((c.hybrid_attention_ratio > 0.0 || c.hybrid_mlp_ratio > 0.0) && !c.hybrid_layer_pattern.empty())
    fail("TransformerConfig.hybrid_layer_pattern \"", c.hybrid_layer_pattern,
         "\" cannot be used together with hybrid_attention_ratio or hybrid_mlp_ratio (deprecated ratios: give the "
         "pattern alone), as in Megatron");
}

bool TransformerConfig::recomputes_mhc() const {
  return recompute_granularity == "selective" && contains(recompute_modules, "mhc");
}

void derive_unset_fields(TransformerConfig& c) {
  if (c.ffn_hidden_size == 0) {
    const bool swiglu = c.gated_linear_unit && c.activation_func == Activation::SiLU;
    // --swiglu keeps the parameter count near a 4h MLP's with two input projections, in units of 64.
    c.ffn_hidden_size = swiglu ? static_cast<int64_t>(static_cast<double>(8 * c.hidden_size) / 3.0 / 64.0) * 64
                               : 4 * c.hidden_size;
  }
  if (c.kv_channels == 0) {
    if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0)
      fail("TransformerConfig.kv_channels unset: derived as hidden_size / num_attention_heads, but hidden_size = ",
           c.hidden_size, " is not a positive multiple of num_attention_heads = ", c.num_attention_heads,
           "; set kv_channels");
    c.kv_channels = c.hidden_size / c.num_attention_heads;
  }
  if (c.num_query_groups == 0) c.num_query_groups = c.num_attention_heads;
  if (c.moe_ffn_hidden_size == 0 && c.num_moe_experts > 0) c.moe_ffn_hidden_size = c.ffn_hidden_size;
}

int64_t TransformerConfig::mamba_heads() const {
  return mamba_num_heads > 0 || mamba_head_dim <= 0 ? mamba_num_heads : 2 * hidden_size / mamba_head_dim;
}

void validate_mamba(const TransformerConfig& c) {
  require_positive(c.mamba_head_dim, "mamba_head_dim");
  require_positive(c.mamba_state_dim, "mamba_state_dim");
  require_positive(c.mamba_num_groups, "mamba_num_groups");
  require_positive(c.mamba_chunk_size, "mamba_chunk_size");
  require_positive(c.mamba_conv_kernel_dim, "mamba_conv_kernel_dim");
  if (c.mamba_num_heads < 0)
    fail("TransformerConfig.mamba_num_heads = ", c.mamba_num_heads, ": expected a positive value, or 0 for ",
         "2 * hidden_size / mamba_head_dim");
  // 2 * hidden_size must not overflow before it is checked (or used, by mamba_heads()).
  constexpr int64_t kMaxDoubled = std::numeric_limits<int64_t>::max() / 2;
  if (c.mamba_num_heads == 0 && (c.hidden_size > kMaxDoubled || c.hidden_size < -kMaxDoubled))
    fail("TransformerConfig.hidden_size = ", c.hidden_size, ": too large for mamba_num_heads = 0 to derive the heads ",
         "from 2 * hidden_size; set mamba_num_heads");
  if (c.mamba_num_heads == 0 && (2 * c.hidden_size) % c.mamba_head_dim != 0)
    fail("TransformerConfig.mamba_num_heads = 0 derives the heads from 2 * hidden_size = ", 2 * c.hidden_size,
         ", which mamba_head_dim = ", c.mamba_head_dim, " does not divide; set mamba_num_heads");
  if (c.mamba_heads() % c.mamba_num_groups != 0)
    fail("TransformerConfig.mamba_num_heads = ", c.mamba_heads(), ": must be a multiple of mamba_num_groups = ",
         c.mamba_num_groups);
  if (!(c.mamba_time_step_min > 0.0 && c.mamba_time_step_min <= c.mamba_time_step_max))
    fail("TransformerConfig.mamba_time_step_min = ", c.mamba_time_step_min, ", mamba_time_step_max = ",
         c.mamba_time_step_max, ": expected 0 < min <= max");
  require_finite_at_least(c.mamba_time_step_floor, 0.0, "mamba_time_step_floor");
  if (!std::isfinite(c.mamba_time_step_max))
    fail("TransformerConfig.mamba_time_step_max = ", c.mamba_time_step_max, ": expected a finite value");
  // Only the upper limit may be infinite (no clamp): an infinite lower one makes every step infinite.
  if (!(c.mamba_time_step_limit_min >= 0.0 && std::isfinite(c.mamba_time_step_limit_min) &&
        c.mamba_time_step_limit_min <= c.mamba_time_step_limit_max))
    fail("TransformerConfig.mamba_time_step_limit_min = ", c.mamba_time_step_limit_min,
         ", mamba_time_step_limit_max = ", c.mamba_time_step_limit_max, ": expected 0 <= min <= max, min finite");
}

void validate_latent_attention(const TransformerConfig& c, bool sparse) {
  if (c.q_lora_rank < 0)
    fail("TransformerConfig.q_lora_rank = ", c.q_lora_rank, ": expected a positive value, or 0 for no query latent");
  require_positive(c.kv_lora_rank, "kv_lora_rank");
  require_positive(c.qk_head_dim, "qk_head_dim");
  require_positive(c.qk_pos_emb_head_dim, "qk_pos_emb_head_dim");
  require_positive(c.v_head_dim, "v_head_dim");
  if (c.qk_pos_emb_head_dim % 2 != 0)
    fail("TransformerConfig.qk_pos_emb_head_dim = ", c.qk_pos_emb_head_dim, ": expected an even value (RoPE rotates pairs)");
  if (!sparse) return;
  if (c.q_lora_rank == 0)
    fail("TransformerConfig.q_lora_rank = 0: DeepSeek sparse attention's indexer reads the query latent; expected a "
         "positive value");
  require_positive(c.dsa_indexer_n_heads, "dsa_indexer_n_heads");
  require_positive(c.dsa_indexer_topk, "dsa_indexer_topk");
  if (c.dsa_indexer_head_dim < c.qk_pos_emb_head_dim)
    fail("TransformerConfig.dsa_indexer_head_dim = ", c.dsa_indexer_head_dim,
         ": expected at least qk_pos_emb_head_dim = ", c.qk_pos_emb_head_dim, " (the indexer rotates that many dimensions)");
}

void validate_shared_kv_attention(const TransformerConfig& c, bool indexed) {
  require_positive(c.q_lora_rank, "q_lora_rank");
  require_positive(c.sliding_window_size, "sliding_window_size");
  require_positive(c.csa_compress_rate, "csa_compress_rate");
  require_positive(c.hca_compress_rate, "hca_compress_rate");
  require_positive(c.qk_pos_emb_head_dim, "qk_pos_emb_head_dim");
  if (c.qk_pos_emb_head_dim % 2 != 0 || c.qk_pos_emb_head_dim > c.kv_channels)
    fail("TransformerConfig.qk_pos_emb_head_dim = ", c.qk_pos_emb_head_dim,
         ": expected an even value of at most kv_channels = ", c.kv_channels, " (RoPE rotates pairs of each head's last channels)");
  if (c.num_query_groups != 1)
    fail("TransformerConfig.num_query_groups = ", c.num_query_groups,
         ": shared-KV attention (W, C, H layers) has one key/value head; expected 1");
  require_positive(c.attention_output_groups, "attention_output_groups");
  require_positive(c.attention_output_lora_rank, "attention_output_lora_rank");
  if (c.num_attention_heads % c.attention_output_groups != 0)
    fail("TransformerConfig.attention_output_groups = ", c.attention_output_groups,
         ": must divide num_attention_heads = ", c.num_attention_heads, " (each group projects whole heads)");
  require_finite_positive(c.compress_rotary_base, "compress_rotary_base");
  validate(c.compress_rotary_scaling, "TransformerConfig.compress_rotary_scaling");
  if (!indexed) return;
  require_positive(c.dsa_indexer_n_heads, "dsa_indexer_n_heads");
  require_positive(c.dsa_indexer_topk, "dsa_indexer_topk");
  if (c.dsa_indexer_head_dim < c.qk_pos_emb_head_dim)
    fail("TransformerConfig.dsa_indexer_head_dim = ", c.dsa_indexer_head_dim,
         ": expected at least qk_pos_emb_head_dim = ", c.qk_pos_emb_head_dim, " (the indexer rotates that many channels)");
}

void validate(const TransformerConfig& c) {
  require_positive(c.num_layers, "num_layers");
  if (c.num_layers > kMaxLayers)
    fail("TransformerConfig.num_layers = ", c.num_layers, ": more than strata's limit of ", kMaxLayers, " layers");
  require_positive(c.hidden_size, "hidden_size");
  require_positive(c.ffn_hidden_size, "ffn_hidden_size");
  require_positive(c.num_attention_heads, "num_attention_heads");
  require_positive(c.num_query_groups, "num_query_groups");
  require_positive(c.kv_channels, "kv_channels");
  require_positive(c.vocab_size, "vocab_size");
  if (c.position_embedding_type == PositionEmbeddingType::LearnedAbsolute)
    require_positive(c.max_position_embeddings, "max_position_embeddings (the rows of learned_absolute's table)");
  if (c.max_position_embeddings < 0)
    fail("TransformerConfig.max_position_embeddings = ", c.max_position_embeddings, ": expected a value >= 0");
  validate_layer_allocation(c);
  const auto kinds = kinds_in_use(c);
  if (kinds.mamba) validate_mamba(c);
  if (kinds.latent_attention) validate_latent_attention(c, kinds.sparse_attention);
  if (kinds.gated_delta_net) validate_gated_delta_net(c);
  if (kinds.moe) validate_moe(c);
  if (!kinds.moe && !c.moe_hash_routed_layers.empty())
    fail("TransformerConfig.moe_hash_routed_layers names ", c.moe_hash_routed_layers.size(),
         " layer(s), but the model has no MoE layer to route by token id");
  if (kinds.shared_kv_attention) validate_shared_kv_attention(c, kinds.compressed_indexer);
  if (!(c.activation_func_clamp_value >= 0.0) || !std::isfinite(c.activation_func_clamp_value))
    fail("TransformerConfig.activation_func_clamp_value = ", c.activation_func_clamp_value,
         ": expected a finite value > 0, or 0 for no clamp");
  if (c.num_attention_heads % c.num_query_groups != 0)
    fail("TransformerConfig.num_query_groups = ", c.num_query_groups,
         ": must divide num_attention_heads = ", c.num_attention_heads);
  if (!(c.rotary_percent >= 0.0 && c.rotary_percent <= 1.0))
    fail("TransformerConfig.rotary_percent = ", c.rotary_percent, ": expected a value in [0, 1]");
  require_finite_positive(c.rotary_base, "rotary_base");
  validate(c.rotary_scaling, "TransformerConfig.rotary_scaling");
  require_finite_positive(c.layernorm_epsilon, "layernorm_epsilon");
  require_finite_at_least(c.init_method_std, 0.0, "init_method_std");
  for (auto [p, name] : {std::pair{c.hidden_dropout, "hidden_dropout"}, {c.attention_dropout, "attention_dropout"}})
    if (!(p >= 0.0 && p < 1.0)) fail("TransformerConfig.", name, " = ", p, ": expected a probability in [0, 1)");
  if (c.mtp_num_layers < 0 || c.mtp_num_layers > kMaxLayers)
    fail("TransformerConfig.mtp_num_layers = ", c.mtp_num_layers, ": expected 0 (no MTP) to ", kMaxLayers);
  require_finite_at_least(c.mtp_loss_scaling_factor, 0.0, "mtp_loss_scaling_factor");
  if (c.enable_mhc_connections) {  // the mHC fields matter only when it is on
    require_positive(c.mhc_num_residual_streams, "mhc_num_residual_streams");
    require_positive(c.mhc_sinkhorn_iterations, "mhc_sinkhorn_iterations");
    if (!(c.mhc_eps >= 0.0) || !std::isfinite(c.mhc_eps))
      fail("TransformerConfig.mhc_eps = ", c.mhc_eps, ": expected a finite value >= 0");
    if (!std::isfinite(c.mhc_init_gating_factor))
      fail("TransformerConfig.mhc_init_gating_factor = ", c.mhc_init_gating_factor, ": expected a finite value");
    if (c.mhc_recompute_layer_num < 0)
      fail("TransformerConfig.mhc_recompute_layer_num = ", c.mhc_recompute_layer_num,
           ": expected a positive value, or 0 (None) for one recompute block");
  }
  validate_recompute(c);
}

}  // namespace strata
