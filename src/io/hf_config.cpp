#include "strata/io/hf_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <sstream>

#include "strata/core/error.h"
#include "strata/io/json_fields.h"

namespace strata::io {

namespace {

using Names = std::initializer_list<std::string_view>;
using Strings = std::vector<std::string>;

constexpr const char* kSupported = "qwen3, qwen3_next, nemotron_h, deepseek_v32, deepseek_v4";

template <class Range>
std::string joined(const Range& names) {
  std::string out;
  for (const auto& name : names) out += cat(out.empty() ? "" : ", ", name);
  return out;
}

template <class Range>
bool contains(const Range& values, std::string_view value) {
  return std::find(std::begin(values), std::end(values), value) != std::end(values);
}

// ---- checks shared by the architectures -------------------------------------------------------

int64_t positive(const JsonFields& f, std::string_view name) {
  const auto value = f.required<int64_t>(name);
  if (value <= 0) f.invalid(name, cat("is ", value, ", expected a positive integer"));
  return value;
}

int64_t optional_positive(const JsonFields& f, std::string_view name, int64_t fallback) {
  return f.has(name) ? positive(f, name) : fallback;
}

// A size only layers of one kind use: required when the model has such layers, else 0 if absent.
int64_t positive_if(const JsonFields& f, std::string_view name, bool needed) {
  return needed ? positive(f, name) : f.optional<int64_t>(name, 0);
}

// One entry per layer, each one of `valid`.
void check_layer_types(const JsonFields& f, std::string_view name, const Strings& types, int64_t num_layers,
                       Names valid) {
  if (int64_t(types.size()) != num_layers)
    f.invalid(name,
              cat("has ", types.size(), " entries, expected one per layer (num_hidden_layers = ", num_layers, ")"));
  for (size_t i = 0; i < types.size(); ++i)
    if (!contains(valid, types[i]))
      f.invalid(cat(name, "[", i, "]"), cat("is \"", types[i], "\", expected one of: ", joined(valid)));
}

void check_kv_heads(const JsonFields& f, int64_t heads, int64_t kv_heads) {
  if (heads % kv_heads != 0)
    f.invalid("num_key_value_heads", cat("is ", kv_heads, ", which does not divide num_attention_heads = ", heads));
}

// Routing picks topk_group of n_group equal groups of experts, then num_experts_per_tok experts.
void check_routing(const JsonFields& f, int64_t experts, int64_t per_token, int64_t groups, int64_t top_groups) {
  if (per_token > experts)
    f.invalid("num_experts_per_tok", cat("is ", per_token, ", more than the ", experts, " routed experts"));
  if (experts % groups != 0)
    f.invalid("n_group", cat("is ", groups, ", which does not divide the ", experts, " routed experts"));
  if (top_groups > groups) f.invalid("topk_group", cat("is ", top_groups, ", more than n_group = ", groups));
}

// ---- RoPE -------------------------------------------------------------------------------------

double rotary_fraction(const JsonFields& f, double fallback) {
  if (!f.has("partial_rotary_factor")) return fallback;
  const auto factor = f.required<double>("partial_rotary_factor");
  if (!(factor > 0 && factor <= 1))
    f.invalid("partial_rotary_factor", cat("is ", factor, ", expected a fraction in (0, 1]"));
  return factor;
}

// HF's standardize_rope_params: the scaled types that place their bands by the pre-training
// context take it from the top level first (Phi-3 style files), then from their own fields, then
// from max_position_embeddings.
std::optional<int64_t> original_context(const JsonFields& top, const JsonFields& params, const std::string& type) {
  static constexpr std::string_view context_types[] = {"yarn", "llama3", "longrope"};
  const auto own = params.optional_value<int64_t>("original_max_position_embeddings");
  if (!contains(context_types, type)) return own;
  if (const auto top_level = top.optional_value<int64_t>("original_max_position_embeddings")) return top_level;
  return own ? own : top.optional_value<int64_t>("max_position_embeddings");
}

// The fields each implemented scaled type cannot do without (HF fails without them too).
void check_scaling_fields(const JsonFields& params, const RopeParameters& rope) {
  const bool banded = rope.rope_type == "yarn" || rope.rope_type == "llama3";
  if (banded && !rope.original_max_position_embeddings)
    params.invalid("original_max_position_embeddings",
                   cat("is missing, and so is max_position_embeddings, which HF falls back to (rope_type ",
                       rope.rope_type, " needs the pre-training context length)"));
  if (rope.rope_type == "yarn" && !rope.factor)
    params.invalid("factor", "is missing, and so is max_position_embeddings, which HF derives it from (divided by "
                             "original_max_position_embeddings)");
  if (rope.rope_type == "linear" || rope.rope_type == "llama3") params.required<double>("factor");
  if (rope.rope_type == "llama3") {
    params.required<double>("low_freq_factor");
    params.required<double>("high_freq_factor");
  }
}

// One RoPE from `params` (rope_parameters, one of its per-branch entries, or the legacy
// rope_scaling, which transformers 5 reads as rope_parameters), its theta and rotated fraction
// falling back to the given ones.
RopeParameters rope_from(const JsonFields& top, const JsonFields& params, std::string origin, double fallback_theta,
                         double fallback_fraction) {
  RopeParameters rope;
  rope.rope_theta = params.optional<double>("rope_theta", fallback_theta);
  rope.rope_type = params.optional<std::string>("rope_type", params.optional<std::string>("type", "default"));
  rope.partial_rotary_factor = rotary_fraction(params, fallback_fraction);
  rope.origin = std::move(origin);
  rope.factor = params.optional_value<double>("factor");
  rope.attention_factor = params.optional_value<double>("attention_factor");
  rope.beta_fast = params.optional_value<double>("beta_fast");
  rope.beta_slow = params.optional_value<double>("beta_slow");
  rope.mscale = params.optional_value<double>("mscale");
  rope.mscale_all_dim = params.optional_value<double>("mscale_all_dim");
  rope.low_freq_factor = params.optional_value<double>("low_freq_factor");
  rope.high_freq_factor = params.optional_value<double>("high_freq_factor");
  rope.truncate = params.optional_value<bool>("truncate");
  rope.original_max_position_embeddings = original_context(top, params, rope.rope_type);
  const auto max_positions = top.optional_value<int64_t>("max_position_embeddings");
  if (rope.rope_type == "yarn" && !rope.factor && max_positions && rope.original_max_position_embeddings)
    rope.factor = double(*max_positions) / double(*rope.original_max_position_embeddings);
  check_scaling_fields(params, rope);
  return rope;
}

// transformers 5 nests RoPE under rope_parameters; older files keep rope_theta,
// partial_rotary_factor and rope_scaling at the top level. The nested values win.
RopeParameters read_rope(const JsonFields& f, double default_fraction) {
  const auto theta = f.optional<double>("rope_theta", 10000.0);
  const auto fraction = rotary_fraction(f, default_fraction);
  for (const char* origin : {"rope_parameters", "rope_scaling"})
    if (f.has(origin)) return rope_from(f, f.object(origin), origin, theta, fraction);
  return {theta, "default", fraction};
}

// ---- Qwen3 and Qwen3-Next ---------------------------------------------------------------------

Qwen3Config read_qwen3_shape(const JsonFields& f, double default_rotary_fraction) {
  Qwen3Config c;
  c.vocab_size = positive(f, "vocab_size");
  c.hidden_size = positive(f, "hidden_size");
  c.intermediate_size = positive(f, "intermediate_size");
  c.num_hidden_layers = positive(f, "num_hidden_layers");
  c.num_attention_heads = positive(f, "num_attention_heads");
  c.num_key_value_heads = optional_positive(f, "num_key_value_heads", c.num_attention_heads);
  check_kv_heads(f, c.num_attention_heads, c.num_key_value_heads);
  if (!f.has("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    f.invalid("num_attention_heads", cat("is ", c.num_attention_heads, ", which does not divide hidden_size = ",
                                         c.hidden_size, " (head_dim is absent, so it would be their quotient)"));
  c.head_dim = optional_positive(f, "head_dim", c.hidden_size / c.num_attention_heads);
  c.rms_norm_eps = f.optional<double>("rms_norm_eps", 1e-6);
  c.rope = read_rope(f, default_rotary_fraction);
  c.tie_word_embeddings = f.optional<bool>("tie_word_embeddings", false);
  c.attention_bias = f.optional<bool>("attention_bias", false);
  c.hidden_act = f.optional<std::string>("hidden_act", "silu");
  return c;
}

Qwen3Config read_qwen3(const JsonFields& f) {
  auto c = read_qwen3_shape(f, 1.0);
  // Qwen3Config has no sliding window, so a file that asks for one must not load as full attention.
  if (f.optional<bool>("use_sliding_window", false))
    f.invalid("use_sliding_window", "is true, expected false (sliding-window attention is not supported for qwen3)");
  if (f.has("layer_types"))
    check_layer_types(f, "layer_types", f.required<Strings>("layer_types"), c.num_hidden_layers, {"full_attention"});
  return c;
}

// Files from before layer_types make every full_attention_interval-th layer full attention.
Strings qwen3_next_interval_layer_types(const JsonFields& f, int64_t num_layers) {
  const auto interval = optional_positive(f, "full_attention_interval", 4);
  Strings types;
  for (int64_t i = 0; i < num_layers; ++i) types.push_back((i + 1) % interval ? "linear_attention" : "full_attention");
  return types;
}

Qwen3NextConfig read_qwen3_next(const JsonFields& f) {
  Qwen3NextConfig c;
  c.base = read_qwen3_shape(f, 0.25);  // HF's default for Qwen3-Next: a quarter of each head rotates
  const auto n = c.base.num_hidden_layers;
  c.layer_types = f.has("layer_types") ? f.required<Strings>("layer_types") : qwen3_next_interval_layer_types(f, n);
  check_layer_types(f, "layer_types", c.layer_types, n, {"linear_attention", "full_attention"});

  c.linear_conv_kernel_dim = positive(f, "linear_conv_kernel_dim");
  c.linear_key_head_dim = positive(f, "linear_key_head_dim");
  c.linear_value_head_dim = positive(f, "linear_value_head_dim");
  c.linear_num_key_heads = positive(f, "linear_num_key_heads");
  c.linear_num_value_heads = positive(f, "linear_num_value_heads");
  if (c.linear_num_value_heads % c.linear_num_key_heads != 0)
    f.invalid("linear_num_value_heads",
              cat("is ", c.linear_num_value_heads,
                  ", expected a multiple of linear_num_key_heads = ", c.linear_num_key_heads));

  c.num_experts = positive(f, "num_experts");
  c.num_experts_per_tok = positive(f, "num_experts_per_tok");
  check_routing(f, c.num_experts, c.num_experts_per_tok, 1, 1);
  c.moe_intermediate_size = positive(f, "moe_intermediate_size");
  c.shared_expert_intermediate_size = positive(f, "shared_expert_intermediate_size");
  c.decoder_sparse_step = optional_positive(f, "decoder_sparse_step", 1);
  c.norm_topk_prob = f.optional<bool>("norm_topk_prob", true);
  c.mlp_only_layers = f.optional<std::vector<int64_t>>("mlp_only_layers", {});
  for (size_t i = 0; i < c.mlp_only_layers.size(); ++i)
    if (c.mlp_only_layers[i] < 0 || c.mlp_only_layers[i] >= n)
      f.invalid(cat("mlp_only_layers[", i, "]"),
                cat("is ", c.mlp_only_layers[i], ", expected a layer index in [0, ", n, ")"));
  c.router_aux_loss_coef = f.optional<double>("router_aux_loss_coef", 0.001);
  return c;
}

// ---- Nemotron-H -------------------------------------------------------------------------------

// The layer schedule: layers_block_type in transformers 5; older files give hybrid_override_pattern,
// one character per layer, and some name the kinds "mamba" and "attention".
Strings nemotron_h_block_types(const JsonFields& f) {
  if (f.has("layers_block_type") || !f.has("hybrid_override_pattern")) {
    auto types = f.required<Strings>("layers_block_type");
    for (auto& type : types) {
      if (type == "mamba") type = "linear_attention";
      if (type == "attention") type = "full_attention";
    }
    return types;
  }
  static const std::map<char, std::string> by_symbol = {
      {'M', "linear_attention"}, {'*', "full_attention"}, {'-', "mlp"}, {'E', "moe"}};
  const auto pattern = f.required<std::string>("hybrid_override_pattern");
  Strings types;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const auto kind = by_symbol.find(pattern[i]);
    if (kind == by_symbol.end())
      f.invalid("hybrid_override_pattern", cat("has '", pattern[i], "' at position ", i,
                                               ", expected M (Mamba-2), * (attention), - (MLP) or E (MoE)"));
    types.push_back(kind->second);
  }
  return types;
}

void read_nemotron_h_mamba(const JsonFields& f, NemotronHConfig& c, bool used) {
  c.mamba_num_heads = positive_if(f, "mamba_num_heads", used);
  c.mamba_head_dim = positive_if(f, "mamba_head_dim", used);
  c.n_groups = positive_if(f, "n_groups", used);
  if (used && c.mamba_num_heads % c.n_groups != 0)
    f.invalid("n_groups", cat("is ", c.n_groups, ", which does not divide mamba_num_heads = ", c.mamba_num_heads));
  c.ssm_state_size = positive_if(f, "ssm_state_size", used);
  c.conv_kernel = positive_if(f, "conv_kernel", used);
  c.chunk_size = optional_positive(f, "chunk_size", 128);
  c.expand = optional_positive(f, "expand", 2);
  c.mamba_hidden_act = f.optional<std::string>("mamba_hidden_act", "silu");
  c.use_conv_bias = f.optional<bool>("use_conv_bias", true);
  c.mamba_proj_bias = f.optional<bool>("mamba_proj_bias", false);
  c.use_bias = f.optional<bool>("use_bias", false);
  c.time_step_min = f.optional<double>("time_step_min", 0.001);
  c.time_step_max = f.optional<double>("time_step_max", 0.1);
  c.time_step_floor = f.optional<double>("time_step_floor", 1e-4);
  const auto limit = f.optional<std::vector<double>>("time_step_limit", {0.0, std::numeric_limits<double>::infinity()});
  if (limit.size() != 2)
    f.invalid("time_step_limit", cat("has ", limit.size(), " entries, expected 2 (the lower and upper bound of dt)"));
  c.time_step_limit = {limit[0], limit[1]};
}

void read_nemotron_h_moe(const JsonFields& f, NemotronHConfig& c, bool used) {
  c.n_routed_experts = positive_if(f, "n_routed_experts", used);
  c.num_experts_per_tok = positive_if(f, "num_experts_per_tok", used);
  c.moe_intermediate_size = positive_if(f, "moe_intermediate_size", used);
  c.n_shared_experts = f.optional<int64_t>("n_shared_experts", 1);
  c.moe_shared_expert_intermediate_size = positive_if(f, "moe_shared_expert_intermediate_size", used);
  c.n_group = optional_positive(f, "n_group", 1);
  c.topk_group = optional_positive(f, "topk_group", 1);
  if (used) check_routing(f, c.n_routed_experts, c.num_experts_per_tok, c.n_group, c.topk_group);
  c.moe_latent_size = f.optional_value<int64_t>("moe_latent_size");
  c.norm_topk_prob = f.optional<bool>("norm_topk_prob", true);
  c.routed_scaling_factor = f.optional<double>("routed_scaling_factor", 1.0);
}

NemotronHConfig read_nemotron_h(const JsonFields& f) {
  NemotronHConfig c;
  c.vocab_size = positive(f, "vocab_size");
  c.hidden_size = positive(f, "hidden_size");
  c.layers_block_type = nemotron_h_block_types(f);
  const auto schedule = f.has("layers_block_type") ? "layers_block_type" : "hybrid_override_pattern";
  const auto n = c.num_hidden_layers();
  if (n == 0) f.invalid(schedule, "is empty, expected one entry per layer");
  // transformers 5 no longer writes num_hidden_layers (the schedule's length is the layer count);
  // where an older file has it, the two must agree.
  if (f.has("num_hidden_layers") && f.required<int64_t>("num_hidden_layers") != n)
    f.invalid(schedule,
              cat("has ", n, " entries, but num_hidden_layers is ", f.required<int64_t>("num_hidden_layers")));
  check_layer_types(f, schedule, c.layers_block_type, n, {"linear_attention", "full_attention", "mlp", "moe"});
  c.layer_norm_epsilon = f.optional<double>("layer_norm_epsilon", 1e-5);
  c.tie_word_embeddings = f.optional<bool>("tie_word_embeddings", false);

  const bool attention = contains(c.layers_block_type, "full_attention");
  c.num_attention_heads = positive_if(f, "num_attention_heads", attention);
  c.num_key_value_heads = attention ? optional_positive(f, "num_key_value_heads", c.num_attention_heads)
                                    : f.optional<int64_t>("num_key_value_heads", 0);
  if (attention) check_kv_heads(f, c.num_attention_heads, c.num_key_value_heads);
  c.head_dim = positive_if(f, "head_dim", attention);
  c.attention_bias = f.optional<bool>("attention_bias", false);

  read_nemotron_h_mamba(f, c, contains(c.layers_block_type, "linear_attention"));

  c.intermediate_size = positive_if(f, "intermediate_size", contains(c.layers_block_type, "mlp"));
  c.mlp_hidden_act = f.optional<std::string>("mlp_hidden_act", "relu2");
  c.mlp_bias = f.optional<bool>("mlp_bias", false);

  read_nemotron_h_moe(f, c, contains(c.layers_block_type, "moe"));
  return c;
}

// ---- DeepSeek-V3.2 ----------------------------------------------------------------------------

DeepseekV32Config read_deepseek_v32(const JsonFields& f) {
  DeepseekV32Config c;
  c.vocab_size = positive(f, "vocab_size");
  c.hidden_size = positive(f, "hidden_size");
  c.num_hidden_layers = positive(f, "num_hidden_layers");
  c.num_attention_heads = positive(f, "num_attention_heads");
  c.rms_norm_eps = f.optional<double>("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = f.optional<bool>("tie_word_embeddings", false);
  c.hidden_act = f.optional<std::string>("hidden_act", "silu");
  const auto n = c.num_hidden_layers;
  c.layer_types = f.optional<Strings>("layer_types", Strings(n, "deepseek_sparse_attention"));
  check_layer_types(f, "layer_types", c.layer_types, n, {"deepseek_sparse_attention"});

  c.q_lora_rank = positive(f, "q_lora_rank");
  c.kv_lora_rank = positive(f, "kv_lora_rank");
  c.qk_nope_head_dim = positive(f, "qk_nope_head_dim");
  c.qk_rope_head_dim = positive(f, "qk_rope_head_dim");
  c.v_head_dim = positive(f, "v_head_dim");
  c.attention_bias = f.optional<bool>("attention_bias", false);
  c.rope = read_rope(f, 1.0);
  c.index_n_heads = positive(f, "index_n_heads");
  c.index_head_dim = positive(f, "index_head_dim");
  c.index_topk = positive(f, "index_topk");

  // Files without mlp_layer_types make the first first_k_dense_replace layers dense.
  c.first_k_dense_replace = f.optional<int64_t>("first_k_dense_replace", 3);
  if (c.first_k_dense_replace < 0)
    f.invalid("first_k_dense_replace", cat("is ", c.first_k_dense_replace, ", expected 0 or more"));
  if (f.has("mlp_layer_types")) {
    c.mlp_layer_types = f.required<Strings>("mlp_layer_types");
  } else {
    const auto dense = std::min(c.first_k_dense_replace, n);
    c.mlp_layer_types = Strings(dense, "dense");
    c.mlp_layer_types.resize(n, "sparse");
  }
  check_layer_types(f, "mlp_layer_types", c.mlp_layer_types, n, {"dense", "sparse"});
  c.intermediate_size = positive_if(f, "intermediate_size", contains(c.mlp_layer_types, "dense"));
  c.mlp_bias = f.optional<bool>("mlp_bias", false);

  const bool moe = contains(c.mlp_layer_types, "sparse");
  c.n_routed_experts = positive_if(f, "n_routed_experts", moe);
  c.n_shared_experts = f.optional<int64_t>("n_shared_experts", 1);
  c.num_experts_per_tok = positive_if(f, "num_experts_per_tok", moe);
  c.moe_intermediate_size = positive_if(f, "moe_intermediate_size", moe);
  c.n_group = optional_positive(f, "n_group", 8);
  c.topk_group = optional_positive(f, "topk_group", 4);
  if (moe) check_routing(f, c.n_routed_experts, c.num_experts_per_tok, c.n_group, c.topk_group);
  c.routed_scaling_factor = f.optional<double>("routed_scaling_factor", 2.5);
  c.norm_topk_prob = f.optional<bool>("norm_topk_prob", true);
  c.num_nextn_predict_layers = f.optional<int64_t>("num_nextn_predict_layers", 0);
  if (c.num_nextn_predict_layers < 0)
    f.invalid("num_nextn_predict_layers", cat("is ", c.num_nextn_predict_layers, ", expected 0 or more"));
  return c;
}

// ---- DeepSeek-V4 ------------------------------------------------------------------------------

constexpr std::string_view kSliding = "sliding_attention";
constexpr std::string_view kCompressedTypes[] = {"compressed_sparse_attention", "heavily_compressed_attention"};

std::map<std::string, int64_t> read_compress_rates(const JsonFields& f) {
  auto rates = f.optional<std::map<std::string, int64_t>>(
      "compress_rates", {{"compressed_sparse_attention", 4}, {"heavily_compressed_attention", 128}});
  for (const auto& [type, rate] : rates) {
    if (!contains(kCompressedTypes, type))
      f.invalid(cat("compress_rates.", type),
                cat("names an unknown layer type, expected one of: ", joined(kCompressedTypes)));
    if (rate <= 0) f.invalid(cat("compress_rates.", type), cat("is ", rate, ", expected a positive integer"));
  }
  return rates;
}

// Released V4 checkpoints give each layer's compression rate in compress_ratios (0: sliding
// window only) instead of layer_types, followed by entries for the multi-token-prediction layers.
Strings v4_layer_types_from_ratios(const JsonFields& f, int64_t num_layers,
                                   const std::map<std::string, int64_t>& rates) {
  const auto ratios = f.required<std::vector<int64_t>>("compress_ratios");
  const auto mtp_layers = f.optional<int64_t>("num_nextn_predict_layers", 0);
  const auto count = int64_t(ratios.size());
  if (count != num_layers && count != num_layers + mtp_layers)
    f.invalid("compress_ratios", cat("has ", count, " entries, expected one per layer (num_hidden_layers = ",
                                     num_layers, ", plus num_nextn_predict_layers = ", mtp_layers, " optionally)"));
  Strings types;
  for (int64_t i = 0; i < num_layers; ++i) {
    if (ratios[i] == 0) {
      types.emplace_back(kSliding);
      continue;
    }
    const auto match =
        std::find_if(rates.begin(), rates.end(), [&](const auto& entry) { return entry.second == ratios[i]; });
    if (match == rates.end())
      f.invalid(cat("compress_ratios[", i, "]"),
                cat("is ", ratios[i], ", expected 0 (sliding window only) or a rate in compress_rates"));
    types.push_back(match->first);
  }
  return types;
}

// V4 rotates with two RoPEs: "main" in the sliding-window branch, "compress" in the compressed
// branches. transformers 5 nests both under rope_parameters; released checkpoints give rope_theta,
// compress_rope_theta and a rope_scaling that applies to the compressed branches only.
void read_v4_ropes(const JsonFields& f, DeepseekV4Config& c, double default_fraction) {
  const auto main_theta = f.optional<double>("rope_theta", 10000.0);
  const auto compress_theta = f.optional<double>("compress_rope_theta", 160000.0);
  const auto fraction = rotary_fraction(f, default_fraction);
  c.main_rope = {main_theta, "default", fraction};
  c.compress_rope = {compress_theta, "default", fraction};
  if (f.has("rope_parameters")) {
    const auto nested = f.object("rope_parameters");
    if (nested.has("main") || nested.has("compress")) {
      c.main_rope = rope_from(f, nested.object("main"), "rope_parameters.main", main_theta, fraction);
      c.compress_rope = rope_from(f, nested.object("compress"), "rope_parameters.compress", compress_theta, fraction);
      return;
    }
  }
  // A single RoPE, nested or legacy, is the compressed branches'; their theta stays compress_rope_theta.
  for (const char* origin : {"rope_parameters", "rope_scaling"})
    if (f.has(origin)) {
      c.compress_rope = rope_from(f, f.object(origin), origin, compress_theta, fraction);
      c.compress_rope.rope_theta = compress_theta;
      return;
    }
}

// Both RoPEs rotate the last qk_rope_head_dim channels of each head.
void check_v4_rope_width(const JsonFields& f, const DeepseekV4Config& c) {
  if (c.qk_rope_head_dim > c.head_dim)
    f.invalid("qk_rope_head_dim", cat("is ", c.qk_rope_head_dim, ", more than head_dim = ", c.head_dim));
  for (const auto& [name, rope] : {std::pair{"main", &c.main_rope}, std::pair{"compress", &c.compress_rope}}) {
    const double rotated = c.head_dim * rope->partial_rotary_factor;
    if (std::abs(rotated - double(c.qk_rope_head_dim)) > 1e-6)
      f.invalid("qk_rope_head_dim",
                cat("is ", c.qk_rope_head_dim, ", but the ", name, " RoPE rotates ", rotated,
                    " channels (partial_rotary_factor ", rope->partial_rotary_factor, " x head_dim ", c.head_dim, ")"));
  }
}

void read_v4_attention(const JsonFields& f, DeepseekV4Config& c) {
  c.num_attention_heads = positive(f, "num_attention_heads");
  c.num_key_value_heads = optional_positive(f, "num_key_value_heads", 1);
  check_kv_heads(f, c.num_attention_heads, c.num_key_value_heads);
  c.head_dim = positive(f, "head_dim");
  c.q_lora_rank = positive(f, "q_lora_rank");
  c.o_groups = positive(f, "o_groups");
  if (c.num_attention_heads % c.o_groups != 0)
    f.invalid("o_groups",
              cat("is ", c.o_groups, ", which does not divide num_attention_heads = ", c.num_attention_heads));
  c.o_lora_rank = positive(f, "o_lora_rank");
  c.sliding_window = positive(f, "sliding_window");
  c.attention_bias = f.optional<bool>("attention_bias", false);
  // Without partial_rotary_factor the rotated width is qk_rope_head_dim (HF's default: 64 of 512).
  const bool rope_dim_given = f.has("qk_rope_head_dim");
  const int64_t rope_dim = rope_dim_given ? positive(f, "qk_rope_head_dim") : 0;
  read_v4_ropes(f, c, rope_dim_given ? double(rope_dim) / c.head_dim : 0.125);
  c.qk_rope_head_dim = rope_dim_given ? rope_dim : std::llround(c.head_dim * c.main_rope.partial_rotary_factor);
  check_v4_rope_width(f, c);

  const bool indexed = contains(c.layer_types, "compressed_sparse_attention");
  c.index_n_heads = positive_if(f, "index_n_heads", indexed);
  c.index_head_dim = positive_if(f, "index_head_dim", indexed);
  c.index_topk = positive_if(f, "index_topk", indexed);
}

void read_v4_moe(const JsonFields& f, DeepseekV4Config& c) {
  const auto n = c.num_hidden_layers;
  // Files without mlp_layer_types route the first num_hash_layers layers by token id.
  if (f.has("mlp_layer_types")) {
    c.mlp_layer_types = f.required<Strings>("mlp_layer_types");
  } else {
    const auto hashed = std::min(f.optional<int64_t>("num_hash_layers", 3), n);
    if (hashed < 0) f.invalid("num_hash_layers", cat("is ", hashed, ", expected 0 or more"));
    c.mlp_layer_types = Strings(hashed, "hash_moe");
    c.mlp_layer_types.resize(n, "moe");
  }
  check_layer_types(f, "mlp_layer_types", c.mlp_layer_types, n, {"hash_moe", "moe"});
  c.n_routed_experts = positive(f, "n_routed_experts");
  c.n_shared_experts = f.optional<int64_t>("n_shared_experts", 1);
  c.num_experts_per_tok = positive(f, "num_experts_per_tok");
  check_routing(f, c.n_routed_experts, c.num_experts_per_tok, 1, 1);
  c.moe_intermediate_size = positive(f, "moe_intermediate_size");
  c.scoring_func = f.optional<std::string>("scoring_func", "sqrtsoftplus");
  static constexpr std::string_view scoring_funcs[] = {"sqrtsoftplus", "softmax", "sigmoid"};
  if (!contains(scoring_funcs, c.scoring_func))
    f.invalid("scoring_func", cat("is \"", c.scoring_func, "\", expected one of: ", joined(scoring_funcs)));
  c.norm_topk_prob = f.optional<bool>("norm_topk_prob", true);
  c.routed_scaling_factor = f.optional<double>("routed_scaling_factor", 1.5);
  c.swiglu_limit = f.optional<double>("swiglu_limit", 10.0);
  c.router_aux_loss_coef = f.optional<double>("router_aux_loss_coef", 0.001);
  c.mlp_bias = f.optional<bool>("mlp_bias", false);
}

DeepseekV4Config read_deepseek_v4(const JsonFields& f) {
  DeepseekV4Config c;
  c.vocab_size = positive(f, "vocab_size");
  c.hidden_size = positive(f, "hidden_size");
  c.num_hidden_layers = positive(f, "num_hidden_layers");
  c.rms_norm_eps = f.optional<double>("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = f.optional<bool>("tie_word_embeddings", false);
  c.hidden_act = f.optional<std::string>("hidden_act", "silu");
  c.hc_mult = positive(f, "hc_mult");
  c.hc_sinkhorn_iters = optional_positive(f, "hc_sinkhorn_iters", 20);
  c.hc_eps = f.optional<double>("hc_eps", 1e-6);

  const auto n = c.num_hidden_layers;
  c.compress_rates = read_compress_rates(f);
  c.layer_types = f.has("layer_types") || !f.has("compress_ratios")
                      ? f.required<Strings>("layer_types")
                      : v4_layer_types_from_ratios(f, n, c.compress_rates);
  check_layer_types(f, "layer_types", c.layer_types, n,
                    {kSliding, "compressed_sparse_attention", "heavily_compressed_attention"});
  for (const auto& type : c.layer_types)
    if (type != kSliding && !c.compress_rates.count(type))
      f.invalid("compress_rates", cat("has no rate for ", type, ", which layer_types uses"));

  read_v4_attention(f, c);
  read_v4_moe(f, c);
  return c;
}

}  // namespace

std::string_view model_type(const HfConfig& config) {
  static constexpr std::string_view names[] = {"qwen3", "qwen3_next", "nemotron_h", "deepseek_v32", "deepseek_v4"};
  static_assert(std::size(names) == std::variant_size_v<HfConfig>);
  return names[config.index()];
}

HfConfig parse_hf_config(const nlohmann::json& json, const std::string& source) {
  const JsonFields file(json, source, "config.json");
  if (!file.has("model_type")) fail(source, ": required field 'model_type' is missing (supported: ", kSupported, ")");
  const auto type = file.required<std::string>("model_type");
  const JsonFields f(json, source, "model_type " + type);
  if (type == "qwen3") return read_qwen3(f);
  if (type == "qwen3_next") return read_qwen3_next(f);
  if (type == "nemotron_h") return read_nemotron_h(f);
  if (type == "deepseek_v32") return read_deepseek_v32(f);
  if (type == "deepseek_v4") return read_deepseek_v4(f);
  fail(source, ": model_type '", type, "' is not supported (supported: ", kSupported, ")");
}

HfConfig read_hf_config(const std::filesystem::path& config_json) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config_json, ec))
    fail(config_json.string(), ": no such file (expected the model's config.json)");
  std::ifstream in(config_json, std::ios::binary);
  if (!in) fail(config_json.string(), ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json json;
  try {
    json = parse_json_allowing_python_floats(text.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number like 1e400
    fail(config_json.string(), ": not valid JSON (", e.what(), ")");
  }
  return parse_hf_config(json, config_json.string());
}

}  // namespace strata::io
