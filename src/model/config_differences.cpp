#include "strata/model/config_differences.h"

#include <set>

#include "strata/core/config_json.h"
#include "strata/model/layer_allocation.h"

namespace strata {

namespace {

std::string symbols(const std::vector<PatternLayer>& layers) {
  std::string out;
  for (const auto& layer : layers) {
    if (layer.sequence) out += symbol(*layer.sequence);
    if (layer.channel) out += symbol(*layer.channel);
  }
  return out;
}

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

// Fields the comparison leaves out whatever the layers: replaced by the layer symbols, or read
// only by training and initialisation.
const std::set<std::string>& not_compared() {
  static const std::set<std::string> fields = {
      "hybrid_layer_pattern", "num_layers", "mtp_num_layers", "experimental_attention_variant",
      "linear_attention_freq", "moe_layer_freq", "multi_latent_attention", "hybrid_attention_ratio",
      "hybrid_mlp_ratio", "hidden_dropout", "attention_dropout", "init_method_std", "fp32_residual_connection",
      "mhc_recompute_layer_num", "recompute_granularity", "recompute_method", "recompute_num_layers",
      "recompute_modules", "linear_chunk_size", "mamba_chunk_size", "mamba_time_step_min",
      "mamba_time_step_max", "mamba_time_step_floor", "moe_aux_loss_coeff", "mtp_loss_scaling_factor"};
  return fields;
}

// Whether a model with these layer symbols and `config`'s hyper-connections and position embedding
// reads `field`.
bool read_by_model(const std::string& field, const std::string& layers, const TransformerConfig& config) {
  const auto has = [&](const char* kinds) { return layers.find_first_of(kinds) != std::string::npos; };
  if (starts_with(field, "mamba_")) return has("M");
  if (starts_with(field, "linear_")) return has("G");
  if (starts_with(field, "dsa_")) return has("D");
  if (starts_with(field, "moe_") || field == "num_moe_experts") return has("E");
  if (starts_with(field, "mhc_")) return config.enable_mhc_connections;
  // Only a learned table has rows to count.
  if (field == "max_position_embeddings") return config.position_embedding_type == PositionEmbeddingType::LearnedAbsolute;
  if (field == "q_lora_rank" || field == "kv_lora_rank" || field == "qk_head_dim" || field == "qk_pos_emb_head_dim" ||
      field == "v_head_dim")
    return has("D+");
  // Softmax attention alone reads these; MLA has its own head sizes and rotates all of its
  // position part.
  if (field == "num_query_groups" || field == "kv_channels" || field == "qk_layernorm" || field == "add_qkv_bias" ||
      field == "attention_output_gate" || field == "rotary_percent")
    return has("*");
  if (field == "num_attention_heads" || field == "rotary_base" || field == "rotary_scaling") return has("*D+");
  if (field == "ffn_hidden_size") return has("-");
  if (field == "gated_linear_unit" || field == "activation_func") return has("-E");
  return true;
}

}  // namespace

std::string canonical_layer_symbols(const TransformerConfig& config) {
  auto out = symbols(resolve_layer_pattern(config).layers);
  for (const auto& depth : resolve_mtp_depths(config)) {
    out += '/';
    out += symbols(depth);
  }
  return out;
}

std::vector<ConfigDifference> model_differences(const TransformerConfig& ours, const TransformerConfig& theirs) {
  std::vector<ConfigDifference> out;
  const auto layers = canonical_layer_symbols(ours), their_layers = canonical_layer_symbols(theirs);
  if (layers != their_layers) out.push_back({"layers", nlohmann::json(layers).dump(), nlohmann::json(their_layers).dump()});
  const auto a = to_json(ours), b = to_json(theirs);
  for (const auto& [field, value] : a.items()) {
    if (not_compared().count(field) || !read_by_model(field, layers, ours)) continue;
    const auto other = b.value(field, nlohmann::json());
    if (value != other) out.push_back({field, value.dump(), other.dump()});
  }
  return out;
}

}  // namespace strata
