#include "strata/core/config_json.h"

#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>

#include "strata/core/error.h"
#include "strata/core/layer_frequency.h"

namespace strata {

namespace {

using Json = nlohmann::json;

// One entry per field of a Struct: how to write it and how to read it.
template <class Struct>
struct FieldOf {
  std::function<Json(const Struct&)> get;
  std::function<void(Struct&, const Json&, const std::string& where)> set;
};
using Field = FieldOf<TransformerConfig>;

template <class T>
T typed(const Json& value, const std::string& where, const char* expected) {
  const bool ok = std::is_same_v<T, bool>          ? value.is_boolean()
                  : std::is_same_v<T, std::string> ? value.is_string()
                  : std::is_integral_v<T>          ? value.is_number_integer()
                                                   : value.is_number();
  if (!ok) fail(where, " is ", value.dump(), ", expected ", expected);
  // nlohmann converts an integer that T cannot hold without a word (2^64 - 1 becomes -1).
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    const bool fits = value.is_number_unsigned()
                          ? value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                          : value.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<T>::min());
    if (!fits)
      fail(where, " is ", value.dump(), ", expected ", expected, " in [", std::numeric_limits<T>::min(), ", ",
           std::numeric_limits<T>::max(), "]");
  }
  return value.get<T>();
}

template <class Struct, class T>
FieldOf<Struct> plain(T Struct::*member, const char* expected) {
  return {[member](const Struct& c) { return Json(c.*member); },
          [member, expected](Struct& c, const Json& v, const std::string& where) {
            c.*member = typed<T>(v, where, expected);
          }};
}

// A size whose 0 means unset (Megatron's None, which a Megatron config writes as null).
Field size_or_unset(int64_t TransformerConfig::*member) {
  return {[member](const TransformerConfig& c) { return Json(c.*member); },
          [member](TransformerConfig& c, const Json& v, const std::string& where) {
            c.*member = v.is_null() ? 0 : typed<int64_t>(v, where, "an integer, or null for unset");
          }};
}

// A choice whose empty value means unset (null in a Megatron config).
Field text_or_unset(std::string TransformerConfig::*member) {
  return {[member](const TransformerConfig& c) { return Json(c.*member); },
          [member](TransformerConfig& c, const Json& v, const std::string& where) {
            c.*member = v.is_null() ? "" : typed<std::string>(v, where, "a string, or null for unset");
          }};
}

// An upper bound that may be infinite: JSON has no infinity, so null stands for it.
Field upper_bound(double TransformerConfig::*member) {
  return {[member](const TransformerConfig& c) { return std::isinf(c.*member) ? Json(nullptr) : Json(c.*member); },
          [member](TransformerConfig& c, const Json& v, const std::string& where) {
            c.*member = v.is_null() ? std::numeric_limits<double>::infinity()
                                    : typed<double>(v, where, "a number, or null for no bound");
          }};
}

Json frequency_json(const LayerFrequency& f) {
  if (!f.explicit_list.empty()) return f.explicit_list;
  return f.every ? Json(*f.every) : Json(nullptr);
}

// An integer N, a list, or Megatron's list expression as a string ("([0]*3+[1]*5)"); null is the
// field's default (Megatron's: moe_layer_freq 1, linear_attention_freq unset).
Field frequency(LayerFrequency TransformerConfig::*member) {
  return {[member](const TransformerConfig& c) { return frequency_json(c.*member); },
          [member](TransformerConfig& c, const Json& v, const std::string& where) {
            LayerFrequency f = TransformerConfig{}.*member;
            if (v.is_number_integer()) {
              f = {.every = typed<int64_t>(v, where, "an integer")};
            } else if (v.is_array()) {
              f = {};
              for (const auto& e : v) f.explicit_list.push_back(typed<int64_t>(e, where + " entry", "an integer"));
            } else if (v.is_string()) {
              f = parse_layer_frequency(v.get<std::string>(), where);
            } else if (!v.is_null()) {
              fail(where, " is ", v.dump(),
                   ", expected an integer N, a list with one 0/1 entry per layer, or a list expression such as "
                   "\"([0]*3+[1]*5)\"");
            }
            c.*member = f;
          }};
}

// The fields of rotary_scaling that each kind uses, beside its "type".
std::map<std::string, FieldOf<RotaryScaling>> scaling_fields(RotaryScalingKind kind) {
  const char* number = "a number";
  std::map<std::string, FieldOf<RotaryScaling>> t;
  if (kind == RotaryScalingKind::None) return t;
  t["factor"] = plain(&RotaryScaling::factor, number);
  if (kind == RotaryScalingKind::Linear) return t;
  t["original_max_position_embeddings"] = plain(&RotaryScaling::original_max_position_embeddings, "an integer");
  if (kind == RotaryScalingKind::Llama3) {
    t["low_freq_factor"] = plain(&RotaryScaling::low_freq_factor, number);
    t["high_freq_factor"] = plain(&RotaryScaling::high_freq_factor, number);
    return t;
  }
  t["beta_fast"] = plain(&RotaryScaling::beta_fast, number);
  t["beta_slow"] = plain(&RotaryScaling::beta_slow, number);
  t["truncate"] = plain(&RotaryScaling::truncate, "true or false");
  t["mscale"] = plain(&RotaryScaling::mscale, number);
  t["mscale_all_dim"] = plain(&RotaryScaling::mscale_all_dim, number);
  // Unset (derived from factor and the mscales) is null.
  t["attention_factor"] = {
      [](const RotaryScaling& s) { return s.attention_factor ? Json(*s.attention_factor) : Json(nullptr); },
      [](RotaryScaling& s, const Json& v, const std::string& where) {
        s.attention_factor = v.is_null() ? std::nullopt
                                         : std::optional(typed<double>(v, where, "a number, or null to derive it"));
      }};
  return t;
}

// rotary_scaling is null for no scaling, else {"type": "yarn", <the fields yarn uses>}.
Json rotary_scaling_json(const RotaryScaling& s) {
  if (s.kind == RotaryScalingKind::None) return nullptr;
  Json out = {{"type", to_string(s.kind)}};
  for (const auto& [name, field] : scaling_fields(s.kind)) out[name] = field.get(s);
  return out;
}

// Fields the object leaves out keep RotaryScaling's defaults.
RotaryScaling rotary_scaling_from_json(const Json& v, const std::string& where) {
  RotaryScaling s;
  if (v.is_null()) return s;
  if (!v.is_object() || !v.contains("type"))
    fail(where, " is ", v.dump(), ", expected null or an object with a \"type\" (linear, yarn or llama3)");
  const auto type_where = where + ", key 'type'";
  s.kind = parse_rotary_scaling_kind(typed<std::string>(v["type"], type_where, "a string"), type_where);
  const auto known = scaling_fields(s.kind);
  for (const auto& [name, value] : v.items()) {
    if (name == "type") continue;
    auto it = known.find(name);
    if (it == known.end()) {
      std::string valid = "type";
      for (const auto& [field, _] : known) valid += ", " + field;
      fail(where, ": unknown key '", name, "' for type ", to_string(s.kind), " (valid keys: ", valid, ")");
    }
    it->second.set(s, value, cat(where, ", key '", name, "'"));
  }
  return s;
}

const std::map<std::string, Field>& fields() {
  static const std::map<std::string, Field> table = [] {
    std::map<std::string, Field> t;
    const char* integer = "an integer";
    const char* number = "a number";
    const char* boolean = "true or false";
    static constexpr const char* text = "a string";
    t["num_layers"] = plain(&TransformerConfig::num_layers, integer);
    t["hybrid_layer_pattern"] = plain(&TransformerConfig::hybrid_layer_pattern, text);
    t["linear_attention_freq"] = frequency(&TransformerConfig::linear_attention_freq);
    t["moe_layer_freq"] = frequency(&TransformerConfig::moe_layer_freq);
    t["experimental_attention_variant"] = {
        [](const TransformerConfig& c) {
          return c.experimental_attention_variant.empty() ? Json(nullptr) : Json(c.experimental_attention_variant);
        },
        [](TransformerConfig& c, const Json& v, const std::string& where) {
          c.experimental_attention_variant = v.is_null() ? "" : typed<std::string>(v, where, "a string or null");
        }};
    t["multi_latent_attention"] = plain(&TransformerConfig::multi_latent_attention, boolean);
    t["hybrid_attention_ratio"] = plain(&TransformerConfig::hybrid_attention_ratio, number);
    t["hybrid_mlp_ratio"] = plain(&TransformerConfig::hybrid_mlp_ratio, number);
    t["hidden_size"] = plain(&TransformerConfig::hidden_size, integer);
    t["ffn_hidden_size"] = size_or_unset(&TransformerConfig::ffn_hidden_size);
    t["num_attention_heads"] = plain(&TransformerConfig::num_attention_heads, integer);
    t["num_query_groups"] = size_or_unset(&TransformerConfig::num_query_groups);
    t["kv_channels"] = size_or_unset(&TransformerConfig::kv_channels);
    t["vocab_size"] = plain(&TransformerConfig::vocab_size, integer);
    t["position_embedding_type"] = {
        [](const TransformerConfig& c) { return Json(to_string(c.position_embedding_type)); },
        [](TransformerConfig& c, const Json& v, const std::string& where) {
          c.position_embedding_type = parse_position_embedding_type(typed<std::string>(v, where, text), where);
        }};
    t["max_position_embeddings"] = size_or_unset(&TransformerConfig::max_position_embeddings);
    t["normalization"] = {[](const TransformerConfig& c) { return Json(to_string(c.normalization)); },
                          [](TransformerConfig& c, const Json& v, const std::string& where) {
                            c.normalization = parse_normalization(typed<std::string>(v, where, text), where);
                          }};
    t["layernorm_epsilon"] = plain(&TransformerConfig::layernorm_epsilon, number);
    t["layernorm_zero_centered_gamma"] = plain(&TransformerConfig::layernorm_zero_centered_gamma, boolean);
    t["qk_layernorm"] = plain(&TransformerConfig::qk_layernorm, boolean);
    t["add_bias_linear"] = plain(&TransformerConfig::add_bias_linear, boolean);
    t["add_qkv_bias"] = plain(&TransformerConfig::add_qkv_bias, boolean);
    t["gated_linear_unit"] = plain(&TransformerConfig::gated_linear_unit, boolean);
    t["activation_func"] = {[](const TransformerConfig& c) { return Json(to_string(c.activation_func)); },
                            [](TransformerConfig& c, const Json& v, const std::string& where) {
                              c.activation_func = parse_activation(typed<std::string>(v, where, text), where);
                            }};
    t["activation_func_clamp_value"] = plain(&TransformerConfig::activation_func_clamp_value, number);
    t["rotary_base"] = plain(&TransformerConfig::rotary_base, number);
    t["rotary_percent"] = plain(&TransformerConfig::rotary_percent, number);
    t["rotary_scaling"] = {[](const TransformerConfig& c) { return rotary_scaling_json(c.rotary_scaling); },
                           [](TransformerConfig& c, const Json& v, const std::string& where) {
                             c.rotary_scaling = rotary_scaling_from_json(v, where);
                           }};
    t["hidden_dropout"] = plain(&TransformerConfig::hidden_dropout, number);
    t["attention_dropout"] = plain(&TransformerConfig::attention_dropout, number);
    t["init_method_std"] = plain(&TransformerConfig::init_method_std, number);
    t["fp32_residual_connection"] = plain(&TransformerConfig::fp32_residual_connection, boolean);
    t["share_embeddings_and_output_weights"] = plain(&TransformerConfig::share_embeddings_and_output_weights, boolean);
    t["attention_output_gate"] = plain(&TransformerConfig::attention_output_gate, boolean);
    t["linear_conv_kernel_dim"] = plain(&TransformerConfig::linear_conv_kernel_dim, integer);
    t["linear_key_head_dim"] = plain(&TransformerConfig::linear_key_head_dim, integer);
    t["linear_value_head_dim"] = plain(&TransformerConfig::linear_value_head_dim, integer);
    t["linear_num_key_heads"] = plain(&TransformerConfig::linear_num_key_heads, integer);
    t["linear_num_value_heads"] = plain(&TransformerConfig::linear_num_value_heads, integer);
    t["linear_chunk_size"] = plain(&TransformerConfig::linear_chunk_size, integer);
    t["mamba_num_heads"] = size_or_unset(&TransformerConfig::mamba_num_heads);
    t["mamba_head_dim"] = plain(&TransformerConfig::mamba_head_dim, integer);
    t["mamba_state_dim"] = plain(&TransformerConfig::mamba_state_dim, integer);
    t["mamba_num_groups"] = plain(&TransformerConfig::mamba_num_groups, integer);
    t["mamba_chunk_size"] = plain(&TransformerConfig::mamba_chunk_size, integer);
    t["mamba_conv_kernel_dim"] = plain(&TransformerConfig::mamba_conv_kernel_dim, integer);
    t["mamba_conv_bias"] = plain(&TransformerConfig::mamba_conv_bias, boolean);
    t["mamba_proj_bias"] = plain(&TransformerConfig::mamba_proj_bias, boolean);
    t["mamba_time_step_min"] = plain(&TransformerConfig::mamba_time_step_min, number);
    t["mamba_time_step_max"] = plain(&TransformerConfig::mamba_time_step_max, number);
    t["mamba_time_step_floor"] = plain(&TransformerConfig::mamba_time_step_floor, number);
    t["mamba_time_step_limit_min"] = plain(&TransformerConfig::mamba_time_step_limit_min, number);
    t["mamba_time_step_limit_max"] = upper_bound(&TransformerConfig::mamba_time_step_limit_max);
    t["q_lora_rank"] = size_or_unset(&TransformerConfig::q_lora_rank);
    t["kv_lora_rank"] = plain(&TransformerConfig::kv_lora_rank, integer);
    t["qk_head_dim"] = plain(&TransformerConfig::qk_head_dim, integer);
    t["qk_pos_emb_head_dim"] = plain(&TransformerConfig::qk_pos_emb_head_dim, integer);
    t["v_head_dim"] = plain(&TransformerConfig::v_head_dim, integer);
    t["dsa_indexer_n_heads"] = size_or_unset(&TransformerConfig::dsa_indexer_n_heads);
    t["dsa_indexer_head_dim"] = size_or_unset(&TransformerConfig::dsa_indexer_head_dim);
    t["dsa_indexer_topk"] = size_or_unset(&TransformerConfig::dsa_indexer_topk);
    t["num_moe_experts"] = size_or_unset(&TransformerConfig::num_moe_experts);
    t["sliding_window_size"] = plain(&TransformerConfig::sliding_window_size, integer);
    t["csa_compress_rate"] = plain(&TransformerConfig::csa_compress_rate, integer);
    t["hca_compress_rate"] = plain(&TransformerConfig::hca_compress_rate, integer);
    t["compress_rotary_base"] = plain(&TransformerConfig::compress_rotary_base, number);
    t["compress_rotary_scaling"] = {
        [](const TransformerConfig& c) { return rotary_scaling_json(c.compress_rotary_scaling); },
        [](TransformerConfig& c, const Json& v, const std::string& where) {
          c.compress_rotary_scaling = rotary_scaling_from_json(v, where);
        }};
    t["attention_output_groups"] = plain(&TransformerConfig::attention_output_groups, integer);
    t["attention_output_lora_rank"] = plain(&TransformerConfig::attention_output_lora_rank, integer);
    t["moe_router_topk"] = plain(&TransformerConfig::moe_router_topk, integer);
    t["moe_ffn_hidden_size"] = size_or_unset(&TransformerConfig::moe_ffn_hidden_size);
    t["moe_shared_expert_intermediate_size"] = size_or_unset(&TransformerConfig::moe_shared_expert_intermediate_size);
    t["moe_shared_expert_gate"] = plain(&TransformerConfig::moe_shared_expert_gate, boolean);
    t["moe_router_score_function"] = plain(&TransformerConfig::moe_router_score_function, text);
    t["moe_router_norm_topk_prob"] = plain(&TransformerConfig::moe_router_norm_topk_prob, boolean);
    t["moe_router_topk_scaling_factor"] = {
        [](const TransformerConfig& c) { return Json(c.moe_router_topk_scaling_factor); },
        [](TransformerConfig& c, const Json& v, const std::string& where) {  // Megatron's None: no scaling
          c.moe_router_topk_scaling_factor = v.is_null() ? 1.0 : typed<double>(v, where, "a number, or null for 1");
        }};
    t["moe_router_enable_expert_bias"] = plain(&TransformerConfig::moe_router_enable_expert_bias, boolean);
    t["moe_aux_loss_coeff"] = plain(&TransformerConfig::moe_aux_loss_coeff, number);
    t["moe_hash_routed_layers"] = {
        [](const TransformerConfig& c) { return Json(c.moe_hash_routed_layers); },
        [](TransformerConfig& c, const Json& v, const std::string& where) {
          c.moe_hash_routed_layers.clear();
          if (v.is_null()) return;  // none
          if (!v.is_array()) fail(where, " is ", v.dump(), ", expected a list of canonical layer indices");
          for (const auto& e : v)
            c.moe_hash_routed_layers.push_back(typed<int64_t>(e, where + " entry", "an integer"));
        }};
    t["mtp_num_layers"] = size_or_unset(&TransformerConfig::mtp_num_layers);
    t["mtp_loss_scaling_factor"] = plain(&TransformerConfig::mtp_loss_scaling_factor, number);
    t["enable_mhc_connections"] = plain(&TransformerConfig::enable_mhc_connections, boolean);
    t["mhc_num_residual_streams"] = plain(&TransformerConfig::mhc_num_residual_streams, integer);
    t["mhc_sinkhorn_iterations"] = plain(&TransformerConfig::mhc_sinkhorn_iterations, integer);
    t["mhc_eps"] = plain(&TransformerConfig::mhc_eps, number);
    t["mhc_init_gating_factor"] = plain(&TransformerConfig::mhc_init_gating_factor, number);
    t["mhc_recompute_layer_num"] = size_or_unset(&TransformerConfig::mhc_recompute_layer_num);
    t["recompute_granularity"] = text_or_unset(&TransformerConfig::recompute_granularity);
    t["recompute_method"] = text_or_unset(&TransformerConfig::recompute_method);
    t["recompute_num_layers"] = size_or_unset(&TransformerConfig::recompute_num_layers);
    t["recompute_modules"] = {[](const TransformerConfig& c) { return Json(c.recompute_modules); },
                              [](TransformerConfig& c, const Json& v, const std::string& where) {
                                if (v.is_null()) {  // Megatron's None: its default list
                                  c.recompute_modules = TransformerConfig{}.recompute_modules;
                                  return;
                                }
                                if (!v.is_array()) fail(where, " is ", v.dump(), ", expected a list of module names");
                                c.recompute_modules.clear();
                                for (const auto& e : v)
                                  c.recompute_modules.push_back(typed<std::string>(e, where + " entry", text));
                              }};
    return t;
  }();
  return table;
}

// Names strata wrote before it took Megatron's (checkpoints and model configs keep loading): each
// old name, and the fields it sets.
struct Alias {
  std::vector<std::string> replaced_by;
  std::function<void(TransformerConfig&, const Json&, const std::string& where)> set;
};

const std::map<std::string, Alias>& aliases() {
  static const std::map<std::string, Alias> table = {
      {"enable_hyper_connections",
       {{"enable_mhc_connections"}, fields().at("enable_mhc_connections").set}},
      {"num_residual_streams", {{"mhc_num_residual_streams"}, fields().at("mhc_num_residual_streams").set}},
      // "The first N layers of each stage recompute their maps": now the maps of every layer
      // recompute (Megatron's selective "mhc"), which gives the same outputs and gradients to the
      // bit and keeps less.
      {"mhc_recompute_num_layers",
       {{"recompute_granularity", "recompute_modules"},
        [](TransformerConfig& c, const Json& v, const std::string& where) {
          if (typed<int64_t>(v, where, "an integer") <= 0) return;
          c.recompute_granularity = "selective";
          c.recompute_modules = {"mhc"};
        }}},
  };
  return table;
}

}  // namespace

Json to_json(const TransformerConfig& config) {
  Json out = Json::object();
  for (const auto& [name, field] : fields()) out[name] = field.get(config);
  return out;
}

TransformerConfig config_from_json(const Json& json, const std::string& source, TransformerConfig base) {
  if (!json.is_object()) fail(source, ": a model config must be a JSON object, got ", json.dump());
  for (const auto& [name, value] : json.items()) {
    if (auto alias = aliases().find(name); alias != aliases().end()) {
      for (const auto& field : alias->second.replaced_by)
        if (json.contains(field))
          fail(source, ": fields '", name, "' (strata's former name) and '", field, "' both given; keep '", field, "'");
      alias->second.set(base, value, cat(source, ": field '", name, "' (now ", alias->second.replaced_by.front(), ")"));
      continue;
    }
    auto it = fields().find(name);
    if (it == fields().end()) {
      std::string valid;
      for (const auto& [known, _] : fields()) valid += (valid.empty() ? "" : ", ") + known;
      fail(source, ": unknown config field '", name, "' (valid fields: ", valid, ")");
    }
    it->second.set(base, value, cat(source, ": field '", name, "'"));
  }
  return base;
}

TransformerConfig saved_config_from_json(const Json& json, const std::string& source) {
  // Before position_embedding_type existed, every softmax attention layer rotated (rope).
  TransformerConfig before_the_field;
  before_the_field.position_embedding_type = PositionEmbeddingType::Rope;
  return config_from_json(json, source, before_the_field);
}

}  // namespace strata
