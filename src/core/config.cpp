#include "strata/core/config.h"

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
  if (c.moe_router_score_function != "softmax" && c.moe_router_score_function != "sigmoid")
    fail("TransformerConfig.moe_router_score_function = '", c.moe_router_score_function,
         "': expected softmax or sigmoid");
  if (c.moe_shared_expert_gate && c.moe_shared_expert_intermediate_size == 0)
    fail("TransformerConfig.moe_shared_expert_gate = true: there is no shared expert to gate ",
         "(moe_shared_expert_intermediate_size = 0)");
  require_finite_positive(c.moe_router_topk_scaling_factor, "moe_router_topk_scaling_factor");
  require_finite_at_least(c.moe_aux_loss_coeff, 0.0, "moe_aux_loss_coeff");
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
  bool mamba, gated_delta_net, latent_attention, sparse_attention, moe;
};

KindsInUse kinds_in_use(const TransformerConfig& c) {
  const auto& p = c.hybrid_layer_pattern;
  const bool ratios = c.hybrid_attention_ratio > 0.0 || c.hybrid_mlp_ratio > 0.0;
  if (!p.empty() || ratios)
    return {.mamba = p.find('M') != std::string::npos || (p.empty() && ratios),
            .gated_delta_net = p.find('G') != std::string::npos || is_linear_attention_variant(c.experimental_attention_variant),
            .latent_attention = p.find_first_of("+AD") != std::string::npos,
            .sparse_attention = p.find('D') != std::string::npos,
            .moe = p.find('E') != std::string::npos || c.num_moe_experts != 0};
  const bool sparse = c.experimental_attention_variant == "dsa";
  return {.mamba = false,
          .gated_delta_net = is_linear_attention_variant(c.experimental_attention_variant),
          .latent_attention = sparse || c.multi_latent_attention,
          .sparse_attention = sparse,
          .moe = c.num_moe_experts != 0};
}
}  // namespace

bool is_linear_attention_variant(const std::string& variant) { return variant == "gdn" || variant == "gated_delta_net"; }

void validate_layer_allocation(const TransformerConfig& c) {
  const auto& variant = c.experimental_attention_variant;
  if (variant == "gdn2")
    fail("TransformerConfig.experimental_attention_variant = 'gdn2': Gated DeltaNet-2 is not implemented in strata ",
         "(gdn, dsa are)");
  if (!variant.empty() && variant != "dsa" && !is_linear_attention_variant(variant))
    fail("TransformerConfig.experimental_attention_variant = '", variant,
         "': expected gdn, dsa, gated_delta_net (an alias of gdn) or none");
  // Megatron asserts it for gdn whether or not a pattern places the layers.
  if (is_linear_attention_variant(variant) && !c.linear_attention_freq.is_set())
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
  validate_layer_allocation(c);
  const auto kinds = kinds_in_use(c);
  if (kinds.mamba) validate_mamba(c);
  if (kinds.latent_attention) validate_latent_attention(c, kinds.sparse_attention);
  if (kinds.gated_delta_net) validate_gated_delta_net(c);
  if (kinds.moe) validate_moe(c);
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
  if (c.enable_hyper_connections) {  // the mHC fields matter only when it is on
    require_positive(c.num_residual_streams, "num_residual_streams");
    require_positive(c.mhc_sinkhorn_iterations, "mhc_sinkhorn_iterations");
    if (!(c.mhc_eps >= 0.0) || !std::isfinite(c.mhc_eps))
      fail("TransformerConfig.mhc_eps = ", c.mhc_eps, ": expected a finite value >= 0");
    if (!std::isfinite(c.mhc_init_gating_factor))
      fail("TransformerConfig.mhc_init_gating_factor = ", c.mhc_init_gating_factor, ": expected a finite value");
    if (c.mhc_recompute_num_layers < 0)
      fail("TransformerConfig.mhc_recompute_num_layers = ", c.mhc_recompute_num_layers, ": expected a value >= 0");
  }
}

}  // namespace strata
