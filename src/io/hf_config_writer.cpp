#include "strata/io/hf_config_writer.h"

#include <cmath>

#include "strata/core/error.h"

namespace strata::io {

namespace {

using Json = nlohmann::json;

// JSON has no literal for infinity or NaN; transformers 5 writes them as {"__float__": "..."}.
Json real(double value) {
  if (std::isnan(value)) return {{"__float__", "NaN"}};
  if (std::isinf(value)) return {{"__float__", value > 0 ? "Infinity" : "-Infinity"}};
  return value;
}

Json id_or_null(std::optional<int64_t> id) { return id ? Json(*id) : Json(); }

// The fields every architecture's config shares. `class_bos` / `class_eos` are the class's
// defaults for the special token ids, taken when the tokenizer is unknown.
Json common_fields(const char* architecture, const char* model_type, const HfConfigExtras& extras,
                   std::optional<int64_t> class_bos, std::optional<int64_t> class_eos) {
  return {{"architectures", {architecture}},
          {"model_type", model_type},
          {"initializer_range", extras.initializer_range},
          {"attention_dropout", extras.attention_dropout},
          {"bos_token_id", id_or_null(extras.bos_token_id ? extras.bos_token_id : class_bos)},
          {"eos_token_id", id_or_null(extras.eos_token_id ? extras.eos_token_id : class_eos)},
          {"pad_token_id", Json()},
          {"dtype", extras.dtype},
          {"use_cache", true}};
}

// rope_parameters as transformers 5 nests them; `with_fraction` writes partial_rotary_factor
// there (the classes whose RoPE rotates part of each head read it from there).
Json rope_json(const RopeParameters& rope, bool with_fraction) {
  Json out = {{"rope_theta", rope.rope_theta}, {"rope_type", rope.rope_type}};
  if (with_fraction) out["partial_rotary_factor"] = rope.partial_rotary_factor;
  const auto put = [&](const char* name, const auto& value) {
    if (value) out[name] = *value;
  };
  put("factor", rope.factor);
  put("original_max_position_embeddings", rope.original_max_position_embeddings);
  put("attention_factor", rope.attention_factor);
  put("beta_fast", rope.beta_fast);
  put("beta_slow", rope.beta_slow);
  put("truncate", rope.truncate);
  put("mscale", rope.mscale);
  put("mscale_all_dim", rope.mscale_all_dim);
  put("low_freq_factor", rope.low_freq_factor);
  put("high_freq_factor", rope.high_freq_factor);
  return out;
}

// HF's YaRN takes its scale from max_position_embeddings / original_max_position_embeddings when
// the file gives the latter, so the two must say the factor; other types keep the class default.
int64_t max_position_embeddings(const RopeParameters& rope, int64_t class_default) {
  if (rope.rope_type == "yarn" && rope.factor && rope.original_max_position_embeddings)
    return std::llround(*rope.factor * double(*rope.original_max_position_embeddings));
  return class_default;
}

// The fields Qwen3 and Qwen3-Next share.
void put_qwen3_shape(Json& out, const Qwen3Config& c, bool rope_fraction) {
  out["vocab_size"] = c.vocab_size;
  out["hidden_size"] = c.hidden_size;
  out["intermediate_size"] = c.intermediate_size;
  out["num_hidden_layers"] = c.num_hidden_layers;
  out["num_attention_heads"] = c.num_attention_heads;
  out["num_key_value_heads"] = c.num_key_value_heads;
  out["head_dim"] = c.head_dim;
  out["rms_norm_eps"] = c.rms_norm_eps;
  out["rope_parameters"] = rope_json(c.rope, rope_fraction);
  out["max_position_embeddings"] = max_position_embeddings(c.rope, 32768);
  out["tie_word_embeddings"] = c.tie_word_embeddings;
  out["attention_bias"] = c.attention_bias;
  out["hidden_act"] = c.hidden_act;
}

Json qwen3_json(const Qwen3Config& c, const HfConfigExtras& extras) {
  auto out = common_fields("Qwen3ForCausalLM", "qwen3", extras, std::nullopt, std::nullopt);
  put_qwen3_shape(out, c, c.rope.partial_rotary_factor != 1.0);
  out["layer_types"] = std::vector<std::string>(size_t(c.num_hidden_layers), "full_attention");
  out["use_sliding_window"] = false;
  out["sliding_window"] = Json();
  out["max_window_layers"] = 28;
  return out;
}

Json qwen3_next_json(const Qwen3NextConfig& c, const HfConfigExtras& extras) {
  auto out = common_fields("Qwen3NextForCausalLM", "qwen3_next", extras, std::nullopt, std::nullopt);
  put_qwen3_shape(out, c.base, true);
  out["partial_rotary_factor"] = c.base.rope.partial_rotary_factor;
  out["layer_types"] = c.layer_types;
  out["linear_conv_kernel_dim"] = c.linear_conv_kernel_dim;
  out["linear_key_head_dim"] = c.linear_key_head_dim;
  out["linear_value_head_dim"] = c.linear_value_head_dim;
  out["linear_num_key_heads"] = c.linear_num_key_heads;
  out["linear_num_value_heads"] = c.linear_num_value_heads;
  out["num_experts"] = c.num_experts;
  out["num_experts_per_tok"] = c.num_experts_per_tok;
  out["moe_intermediate_size"] = c.moe_intermediate_size;
  out["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
  out["decoder_sparse_step"] = c.decoder_sparse_step;
  out["norm_topk_prob"] = c.norm_topk_prob;
  out["mlp_only_layers"] = c.mlp_only_layers;
  out["router_aux_loss_coef"] = c.router_aux_loss_coef;
  out["output_router_logits"] = false;
  return out;
}

Json nemotron_h_json(const NemotronHConfig& c, const HfConfigExtras& extras) {
  auto out = common_fields("NemotronHForCausalLM", "nemotron_h", extras, 1, 2);
  out["pad_token_id"] = 0;
  out["hidden_dropout"] = extras.hidden_dropout;
  out["vocab_size"] = c.vocab_size;
  out["hidden_size"] = c.hidden_size;
  out["layers_block_type"] = c.layers_block_type;
  out["layer_norm_epsilon"] = c.layer_norm_epsilon;
  out["tie_word_embeddings"] = c.tie_word_embeddings;
  out["max_position_embeddings"] = 4096;
  out["sliding_window"] = Json();
  out["num_logits_to_keep"] = 1;
  out["rescale_prenorm_residual"] = true;
  out["residual_in_fp32"] = false;
  // Attention.
  out["num_attention_heads"] = c.num_attention_heads;
  out["num_key_value_heads"] = c.num_key_value_heads;
  out["head_dim"] = c.head_dim;
  out["attention_bias"] = c.attention_bias;
  // Mamba-2.
  out["mamba_num_heads"] = c.mamba_num_heads;
  out["mamba_head_dim"] = c.mamba_head_dim;
  out["n_groups"] = c.n_groups;
  out["ssm_state_size"] = c.ssm_state_size;
  out["conv_kernel"] = c.conv_kernel;
  out["chunk_size"] = c.chunk_size;
  out["expand"] = c.expand;
  out["mamba_hidden_act"] = c.mamba_hidden_act;
  out["use_conv_bias"] = c.use_conv_bias;
  out["mamba_proj_bias"] = c.mamba_proj_bias;
  out["use_bias"] = c.use_bias;
  out["time_step_min"] = c.time_step_min;
  out["time_step_max"] = c.time_step_max;
  out["time_step_floor"] = c.time_step_floor;
  out["time_step_limit"] = {real(c.time_step_limit.first), real(c.time_step_limit.second)};
  out["mamba_ssm_cache_dtype"] = "float32";
  out["use_mamba_kernels"] = true;
  // MLP.
  out["intermediate_size"] = c.intermediate_size;
  out["mlp_hidden_act"] = c.mlp_hidden_act;
  out["mlp_bias"] = c.mlp_bias;
  // MoE.
  out["n_routed_experts"] = c.n_routed_experts;
  out["n_shared_experts"] = c.n_shared_experts;
  out["num_experts_per_tok"] = c.num_experts_per_tok;
  out["moe_intermediate_size"] = c.moe_intermediate_size;
  out["moe_shared_expert_intermediate_size"] = c.moe_shared_expert_intermediate_size;
  out["moe_shared_expert_overlap"] = true;
  out["n_group"] = c.n_group;
  out["topk_group"] = c.topk_group;
  out["moe_latent_size"] = id_or_null(c.moe_latent_size);
  out["norm_topk_prob"] = c.norm_topk_prob;
  out["routed_scaling_factor"] = c.routed_scaling_factor;
  // Multi-token prediction, which strata does not export for Nemotron-H.
  out["num_nextn_predict_layers"] = 0;
  out["mtp_layers_block_type"] = {"full_attention", "moe"};
  return out;
}

Json deepseek_v32_json(const DeepseekV32Config& c, const HfConfigExtras& extras) {
  auto out = common_fields("DeepseekV32ForCausalLM", "deepseek_v32", extras, 0, 1);
  out["vocab_size"] = c.vocab_size;
  out["hidden_size"] = c.hidden_size;
  out["num_hidden_layers"] = c.num_hidden_layers;
  out["num_attention_heads"] = c.num_attention_heads;
  out["num_key_value_heads"] = c.num_attention_heads;
  out["rms_norm_eps"] = c.rms_norm_eps;
  out["tie_word_embeddings"] = c.tie_word_embeddings;
  out["hidden_act"] = c.hidden_act;
  out["layer_types"] = c.layer_types;
  // MLA.
  out["q_lora_rank"] = c.q_lora_rank;
  out["kv_lora_rank"] = c.kv_lora_rank;
  out["qk_nope_head_dim"] = c.qk_nope_head_dim;
  out["qk_rope_head_dim"] = c.qk_rope_head_dim;
  out["qk_head_dim"] = c.qk_nope_head_dim + c.qk_rope_head_dim;
  out["head_dim"] = c.qk_rope_head_dim;  // HF's name for the rotated width here
  out["v_head_dim"] = c.v_head_dim;
  out["attention_bias"] = c.attention_bias;
  out["rope_parameters"] = rope_json(c.rope, false);
  out["max_position_embeddings"] = max_position_embeddings(c.rope, 163840);
  // DSA indexer.
  out["index_n_heads"] = c.index_n_heads;
  out["index_head_dim"] = c.index_head_dim;
  out["index_topk"] = c.index_topk;
  // MLP and MoE.
  out["intermediate_size"] = c.intermediate_size;
  out["mlp_bias"] = c.mlp_bias;
  out["mlp_layer_types"] = c.mlp_layer_types;
  out["first_k_dense_replace"] = c.first_k_dense_replace;
  out["n_routed_experts"] = c.n_routed_experts;
  out["n_shared_experts"] = c.n_shared_experts;
  out["num_experts_per_tok"] = c.num_experts_per_tok;
  out["moe_intermediate_size"] = c.moe_intermediate_size;
  out["n_group"] = c.n_group;
  out["topk_group"] = c.topk_group;
  out["routed_scaling_factor"] = c.routed_scaling_factor;
  out["norm_topk_prob"] = c.norm_topk_prob;
  if (c.num_nextn_predict_layers > 0) out["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  return out;
}

}  // namespace

nlohmann::json hf_config_json(const HfConfig& config, const HfConfigExtras& extras) {
  if (const auto* c = std::get_if<Qwen3Config>(&config)) return qwen3_json(*c, extras);
  if (const auto* c = std::get_if<Qwen3NextConfig>(&config)) return qwen3_next_json(*c, extras);
  if (const auto* c = std::get_if<NemotronHConfig>(&config)) return nemotron_h_json(*c, extras);
  if (const auto* c = std::get_if<DeepseekV32Config>(&config)) return deepseek_v32_json(*c, extras);
  fail("config.json for ", model_type(config), ": strata cannot build this architecture, so it does not export it");
}

}  // namespace strata::io
