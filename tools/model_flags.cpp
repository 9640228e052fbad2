#include "model_flags.h"

#include <algorithm>
#include <cstdio>

#include "flag_checks.h"
#include "strata/core/error.h"
#include "strata/model/layer_pattern.h"

namespace strata::tools {

namespace {

using Config = TransformerConfig;

template <class T>
using Setter = std::function<void(Config&, const T&)>;

template <class T>
Setter<T> field(T Config::*member) {
  return [member](Config& c, const T& v) { c.*member = v; };
}

// Registers a flag taking a value of type T: when given, `set` applies it to the base model.
template <class T>
CLI::Option* value_flag(CLI::App& cmd, ModelFlags& f, const std::string& name, Setter<T> set, const std::string& help) {
  return cmd.add_option_function<T>(
      name,
      [&f, name, set](const T& v) {
        f.given.push_back({name, [set, v](Config& c) { set(c, v); }});
      },
      help);
}

// Registers a store_true flag: when given, `set` applies to the base model.
CLI::Option* switch_flag(CLI::App& cmd, ModelFlags& f, const std::string& name, std::function<void(Config&)> set,
                         const std::string& help) {
  return cmd.add_flag_callback(
      name,
      [&f, name, set] {
        f.given.push_back({name, set});
      },
      help);
}

// A flag whose value is kept in `slot` for apply_model_flags to settle (it depends on others);
// it counts as a given model flag.
template <class T>
CLI::Option* settled_flag(CLI::App& cmd, ModelFlags& f, const std::string& name, std::optional<T>& slot,
                          const std::string& help) {
  return cmd.add_option_function<T>(
      name,
      [&f, &slot, name](const T& v) {
        slot = v;
        f.given.push_back({name, [](Config&) {}});
      },
      help);
}

CLI::Option* settled_switch(CLI::App& cmd, ModelFlags& f, const std::string& name, bool& slot,
                            const std::string& help) {
  return cmd.add_flag_callback(
      name,
      [&f, &slot, name] {
        slot = true;
        f.given.push_back({name, [](Config&) {}});
      },
      help);
}

bool is_given(const ModelFlags& f, const std::string& flag) {
  return std::any_of(f.given.begin(), f.given.end(), [&](const auto& s) { return s.flag == flag; });
}

void add_shape_flags(CLI::App& cmd, ModelFlags& f) {
  const auto positive = integer_at_least(1);
  settled_flag(cmd, f, "--num-layers", f.num_layers, "layers (the pattern's symbols, or attention+MLP layers)")
      ->check(positive);
  settled_flag(cmd, f, "--hybrid-layer-pattern", f.hybrid_layer_pattern,
               "layer pattern, e.g. \"M-M*-\" or \"[*-][G-]\" (docs/layer_patterns.md)");
  settled_flag(cmd, f, "--hybrid-override-pattern", f.hybrid_override_pattern,
               "deprecated name of --hybrid-layer-pattern (Megatron's)");
  value_flag<int64_t>(cmd, f, "--hidden-size", field(&Config::hidden_size), "model width")->check(positive);
  value_flag<int64_t>(cmd, f, "--ffn-hidden-size", field(&Config::ffn_hidden_size),
                      "MLP inner width (default: 4 x hidden, or --swiglu's 8/3 x hidden in units of 64)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--num-attention-heads", field(&Config::num_attention_heads), "query heads")
      ->check(positive);
  settled_switch(cmd, f, "--group-query-attention", f.group_query_attention,
                 "grouped-query attention with --num-query-groups key/value heads (default 1)");
  settled_flag(cmd, f, "--num-query-groups", f.num_query_groups, "key/value heads (with --group-query-attention)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--kv-channels", field(&Config::kv_channels),
                      "per-head dimension (default: hidden size / heads)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--max-position-embeddings", field(&Config::max_position_embeddings),
                      "rows of the learned position table (learned_absolute)")
      ->check(positive);
  value_flag<std::string>(
      cmd, f, "--position-embedding-type",
      [](Config& c, const std::string& v) {
        if (v == "yarn")
          fail("--position-embedding-type yarn: not implemented as flags; give rope and set rotary_scaling ",
               "{\"type\": \"yarn\", ...} in --model-config");
        if (v == "mrope" || v == "relative")
          fail("--position-embedding-type ", v, ": not implemented (learned_absolute, rope and none are)");
        c.position_embedding_type = parse_position_embedding_type(v, "--position-embedding-type");
      },
      "learned_absolute (Megatron's default), rope or none")
      ->check(CLI::IsMember({"learned_absolute", "rope", "yarn", "mrope", "relative", "none"}));
  switch_flag(
      cmd, f, "--use-rotary-position-embeddings",
      [](Config& c) { c.position_embedding_type = PositionEmbeddingType::Rope; },
      "deprecated: --position-embedding-type rope");
  settled_switch(cmd, f, "--no-position-embedding", f.no_position_embedding,
                 "deprecated; accepted with rope only, as in Megatron");
  switch_flag(
      cmd, f, "--untie-embeddings-and-output-weights", [](Config& c) { c.share_embeddings_and_output_weights = false; },
      "an output layer of its own (default: the embedding's weight)");
}

void add_numerics_flags(CLI::App& cmd, ModelFlags& f) {
  const auto probability = real_in(0.0, 1.0, /*max_open=*/true);
  value_flag<std::string>(
      cmd, f, "--normalization",
      [](Config& c, const std::string& v) { c.normalization = parse_normalization(v, "--normalization"); },
      "LayerNorm (default) or RMSNorm")
      ->check(CLI::IsMember({"LayerNorm", "RMSNorm"}));
  value_flag<double>(cmd, f, "--norm-epsilon", field(&Config::layernorm_epsilon), "norm epsilon (default 1e-5)")
      ->check(real_above(0.0));
  switch_flag(
      cmd, f, "--apply-layernorm-1p", [](Config& c) { c.layernorm_zero_centered_gamma = true; },
      "zero-centred norm weights: the norm multiplies by 1 + w");
  switch_flag(
      cmd, f, "--qk-layernorm", [](Config& c) { c.qk_layernorm = true; }, "norm over each head of q and k");
  switch_flag(
      cmd, f, "--disable-bias-linear", [](Config& c) { c.add_bias_linear = false; },
      "no biases in the linear layers (default: biases)");
  switch_flag(
      cmd, f, "--add-qkv-bias", [](Config& c) { c.add_qkv_bias = true; }, "a bias on the q/k/v projection");
  settled_switch(cmd, f, "--swiglu", f.swiglu, "gated linear unit with SiLU (default: GELU, no gate)");
  settled_switch(cmd, f, "--squared-relu", f.squared_relu, "squared ReLU activation");
  value_flag<double>(cmd, f, "--activation-func-clamp-value", field(&Config::activation_func_clamp_value),
                     "gated linear unit: clamp the gate to at most this and the up half to [-this, this]")
      ->check(real_above(0.0));
  switch_flag(
      cmd, f, "--attention-output-gate", [](Config& c) { c.attention_output_gate = true; },
      "sigmoid gate on each attention head's output (Qwen3-Next)");
  value_flag<double>(cmd, f, "--hidden-dropout", field(&Config::hidden_dropout),
                     "dropout after each sublayer (default 0.1)")
      ->check(probability);
  value_flag<double>(cmd, f, "--attention-dropout", field(&Config::attention_dropout),
                     "dropout of the attention probabilities (default 0.1)")
      ->check(probability);
  value_flag<double>(cmd, f, "--init-method-std", field(&Config::init_method_std), "weight init standard deviation")
      ->check(real_at_least(0.0));
  switch_flag(
      cmd, f, "--fp32-residual-connection", [](Config& c) { c.fp32_residual_connection = true; },
      "under --bf16 the residual stream stays float32 (default: bfloat16)");
}

void add_rotary_flags(CLI::App& cmd, ModelFlags& f) {
  value_flag<int64_t>(
      cmd, f, "--rotary-base", [](Config& c, const int64_t& v) { c.rotary_base = static_cast<double>(v); },
      "rotary base period (an integer, as Megatron takes it; default 10000)")
      ->check(integer_at_least(1));
  value_flag<double>(cmd, f, "--rotary-percent", field(&Config::rotary_percent),
                     "fraction of each head's dimensions that rotate (default 1)")
      ->check(real_in(0.0, 1.0));
  settled_flag(cmd, f, "--rotary-seq-len-interpolation-factor", f.rotary_seq_len_interpolation_factor,
               "positions divided by this factor (linear RoPE scaling)")
      ->check(integer_at_least(1));
  settled_switch(cmd, f, "--use-rope-scaling", f.use_rope_scaling, "Llama 3.x RoPE scaling");
  settled_flag(cmd, f, "--rope-scaling-factor", f.rope_scaling_factor, "factor of --use-rope-scaling (default 8)")
      ->check(real_above(0.0));
  settled_flag(cmd, f, "--rope-type", f.rope_type, "MLA: yarn (default) or rope")
      ->check(CLI::IsMember({"rope", "yarn"}));
  settled_flag(cmd, f, "--rotary-scaling-factor", f.rotary_scaling_factor, "MLA's YaRN factor (default 1)")
      ->check(real_above(0.0));
  settled_flag(cmd, f, "--mscale", f.mscale, "MLA's YaRN mscale (default 1)")->check(finite_real());
  settled_flag(cmd, f, "--mscale-all-dim", f.mscale_all_dim, "MLA's YaRN mscale_all_dim (default 0)")
      ->check(finite_real());
}

void add_mixer_flags(CLI::App& cmd, ModelFlags& f) {
  const auto positive = integer_at_least(1), count = integer_at_least(0);
  // Mamba2.
  value_flag<int64_t>(cmd, f, "--mamba-state-dim", field(&Config::mamba_state_dim), "SSM state size (default 128)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--mamba-head-dim", field(&Config::mamba_head_dim), "Mamba2 head dimension (default 64)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--mamba-num-groups", field(&Config::mamba_num_groups), "B/C groups (default 8)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--mamba-num-heads", field(&Config::mamba_num_heads),
                      "Mamba2 heads (default: 2 x hidden / head dim)")
      ->check(positive);
  // Gated DeltaNet.
  value_flag<int64_t>(cmd, f, "--linear-conv-kernel-dim", field(&Config::linear_conv_kernel_dim),
                      "GDN conv width (default 4)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--linear-key-head-dim", field(&Config::linear_key_head_dim),
                      "GDN key head dim (default 128)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--linear-value-head-dim", field(&Config::linear_value_head_dim),
                      "GDN value head dim (default 128)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--linear-num-key-heads", field(&Config::linear_num_key_heads),
                      "GDN key heads (default 16)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--linear-num-value-heads", field(&Config::linear_num_value_heads),
                      "GDN value heads (default 32)")
      ->check(positive);
  // Multi-head latent attention and DeepSeek sparse attention.
  value_flag<int64_t>(cmd, f, "--q-lora-rank", field(&Config::q_lora_rank), "query latent width (default: none)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--kv-lora-rank", field(&Config::kv_lora_rank), "key/value latent width (default 32)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--qk-head-dim", field(&Config::qk_head_dim), "MLA q/k content head dim (default 128)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--qk-pos-emb-head-dim", field(&Config::qk_pos_emb_head_dim),
                      "MLA q/k rotary head dim (default 64)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--v-head-dim", field(&Config::v_head_dim), "MLA value head dim (default 128)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--dsa-indexer-n-heads", field(&Config::dsa_indexer_n_heads), "DSA indexer heads")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--dsa-indexer-head-dim", field(&Config::dsa_indexer_head_dim), "DSA indexer head dim")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--dsa-indexer-topk", field(&Config::dsa_indexer_topk), "keys each query attends to")
      ->check(positive);
  // Mixture of experts.
  value_flag<int64_t>(cmd, f, "--num-experts", field(&Config::num_moe_experts), "routed experts (0: no MoE)")
      ->check(count);
  value_flag<int64_t>(cmd, f, "--moe-ffn-hidden-size", field(&Config::moe_ffn_hidden_size),
                      "expert MLP width (default: --ffn-hidden-size)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--moe-router-topk", field(&Config::moe_router_topk), "experts per token (default 2)")
      ->check(positive);
  value_flag<int64_t>(cmd, f, "--moe-shared-expert-intermediate-size",
                      field(&Config::moe_shared_expert_intermediate_size), "shared expert width (default: none)")
      ->check(positive);
  switch_flag(
      cmd, f, "--moe-shared-expert-gate", [](Config& c) { c.moe_shared_expert_gate = true; },
      "sigmoid gate on the shared expert");
  value_flag<std::string>(cmd, f, "--moe-router-score-function", field(&Config::moe_router_score_function),
                          "softmax (default), sigmoid or sqrtsoftplus")
      ->check(CLI::IsMember({"softmax", "sigmoid", "sqrtsoftplus"}));
  value_flag<double>(cmd, f, "--moe-router-topk-scaling-factor", field(&Config::moe_router_topk_scaling_factor),
                     "multiplies the routed weights (default: none)")
      ->check(real_above(0.0));
  settled_switch(cmd, f, "--moe-router-pre-softmax", f.moe_router_pre_softmax,
                 "softmax over all experts before the top k (no renormalisation)");
  value_flag<double>(cmd, f, "--moe-aux-loss-coeff", field(&Config::moe_aux_loss_coeff),
                     "load-balancing loss weight (default 0)")
      ->check(real_at_least(0.0));
  settled_flag(cmd, f, "--moe-router-load-balancing-type", f.moe_router_load_balancing_type,
               "aux_loss (default) or none")
      ->check(CLI::IsMember({"aux_loss", "none"}));
}

void add_hyper_connection_flags(CLI::App& cmd, ModelFlags& f) {
  switch_flag(
      cmd, f, "--enable-mhc-connections", [](Config& c) { c.enable_mhc_connections = true; },
      "mHC residual streams on every layer (docs/hyper_connections.md)");
  value_flag<int64_t>(cmd, f, "--mhc-num-residual-streams", field(&Config::mhc_num_residual_streams),
                      "mHC streams n (default 4)")
      ->check(integer_at_least(1));
  value_flag<int64_t>(cmd, f, "--mhc-sinkhorn-iterations", field(&Config::mhc_sinkhorn_iterations),
                      "Sinkhorn-Knopp iterations of mHC's map (default 20)")
      ->check(integer_at_least(1));
  value_flag<double>(cmd, f, "--mhc-init-gating-factor", field(&Config::mhc_init_gating_factor),
                     "initial scale of mHC's maps (default 0.01)")
      ->check(finite_real());
  value_flag<int64_t>(cmd, f, "--mhc-recompute-layer-num", field(&Config::mhc_recompute_layer_num),
                      "layers per mHC recompute block (strata reruns each map alone; docs/megatron.md)")
      ->check(integer_at_least(1));
  value_flag<double>(cmd, f, "--mhc-eps", field(&Config::mhc_eps),
                     "strata's: mHC's floor of the pre map and Sinkhorn's denominators (default 1e-6)")
      ->check(real_at_least(0.0));
}

void add_multi_token_prediction_flags(CLI::App& cmd, ModelFlags& f) {
  value_flag<int64_t>(cmd, f, "--mtp-num-layers", field(&Config::mtp_num_layers),
                      "multi-token prediction depths (default: none; a hybrid pattern gives them after '/')")
      ->check(integer_at_least(0));
  value_flag<double>(cmd, f, "--mtp-loss-scaling-factor", field(&Config::mtp_loss_scaling_factor),
                     "weight of the mean MTP loss in the training loss (default 0.1)")
      ->check(real_at_least(0.0));
}

void add_recompute_flags(CLI::App& cmd, ModelFlags& f) {
  value_flag<std::string>(cmd, f, "--recompute-granularity", field(&Config::recompute_granularity),
                          "full: recompute whole layers in backward; selective: --recompute-modules")
      ->check(CLI::IsMember({"full", "selective"}));
  value_flag<std::string>(cmd, f, "--recompute-method", field(&Config::recompute_method),
                          "full recompute: uniform (groups of --recompute-num-layers) or block (the first N)")
      ->check(CLI::IsMember({"uniform", "block"}));
  value_flag<int64_t>(cmd, f, "--recompute-num-layers", field(&Config::recompute_num_layers),
                      "layers per uniform group, or recomputed layers per stage (block)")
      ->check(integer_at_least(0));
  value_flag<std::vector<std::string>>(cmd, f, "--recompute-modules", field(&Config::recompute_modules),
                                       "selective recompute: what to rerun (strata implements mhc)")
      ->expected(1, 11)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  settled_switch(cmd, f, "--recompute-activations", f.recompute_activations,
                 "Megatron's shorthand for --recompute-granularity selective");
}

// The rotary scaling the rope flags ask for, over the base's.
void apply_rotary_scaling(const ModelFlags& f, Config& c) {
  if (f.rotary_seq_len_interpolation_factor) {
    c.rotary_scaling = RotaryScaling{};
    c.rotary_scaling.kind = RotaryScalingKind::Linear;
    c.rotary_scaling.factor = static_cast<double>(*f.rotary_seq_len_interpolation_factor);
  }
  if (f.use_rope_scaling) {  // Megatron's Llama 3.x constants beside the factor
    if (f.rotary_seq_len_interpolation_factor)
      fail("--use-rope-scaling and --rotary-seq-len-interpolation-factor: give one RoPE scaling");
    c.rotary_scaling = RotaryScaling{};
    c.rotary_scaling.kind = RotaryScalingKind::Llama3;
    c.rotary_scaling.factor = f.rope_scaling_factor.value_or(8.0);
    c.rotary_scaling.low_freq_factor = 1.0;
    c.rotary_scaling.high_freq_factor = 4.0;
    c.rotary_scaling.original_max_position_embeddings = 8192;
  } else if (f.rope_scaling_factor) {
    fail("--rope-scaling-factor ", *f.rope_scaling_factor, ": applies with --use-rope-scaling");
  }
  // MLA's rope: YaRN by default in Megatron, with its factor 1 the same tables as plain RoPE.
  const bool yarn_flags = f.rotary_scaling_factor || f.mscale || f.mscale_all_dim;
  if (f.rope_type == "rope" && yarn_flags)
    fail("--rope-type rope: --rotary-scaling-factor, --mscale and --mscale-all-dim apply to yarn");
  if (f.rope_type != "rope" && yarn_flags && f.rotary_scaling_factor.value_or(1.0) != 1.0) {
    c.rotary_scaling = RotaryScaling{};
    c.rotary_scaling.kind = RotaryScalingKind::Yarn;
    c.rotary_scaling.factor = *f.rotary_scaling_factor;
    c.rotary_scaling.original_max_position_embeddings = 4096;  // MLATransformerConfig's
    c.rotary_scaling.beta_fast = 32.0;
    c.rotary_scaling.beta_slow = 1.0;
    c.rotary_scaling.mscale = f.mscale.value_or(1.0);
    c.rotary_scaling.mscale_all_dim = f.mscale_all_dim.value_or(0.0);
  }
}

}  // namespace

std::string ModelFlags::first_given() const {
  if (!given.empty()) return given.front().flag;
  return layer_allocation.first_given();
}

bool ModelFlags::define_a_model() const {
  const bool layers = num_layers || hybrid_layer_pattern || hybrid_override_pattern;
  return layers && is_given(*this, "--hidden-size") && is_given(*this, "--num-attention-heads");
}

void add_model_flags(CLI::App& cmd, ModelFlags& f) {
  add_shape_flags(cmd, f);
  add_numerics_flags(cmd, f);
  add_rotary_flags(cmd, f);
  add_mixer_flags(cmd, f);
  add_layer_allocation_flags(cmd, f.layer_allocation);
  add_hyper_connection_flags(cmd, f);
  add_multi_token_prediction_flags(cmd, f);
  add_recompute_flags(cmd, f);
}

TransformerConfig megatron_flag_defaults() {
  TransformerConfig c;
  c.q_lora_rank = 0;
  c.kv_lora_rank = 32;
  return c;
}

TransformerConfig apply_model_flags(const ModelFlags& f, TransformerConfig c) {
  for (const auto& setting : f.given) setting.apply(c);

  if (f.hybrid_override_pattern) {
    if (f.hybrid_layer_pattern)
      fail(
          "--hybrid-override-pattern and --hybrid-layer-pattern cannot both be given; --hybrid-override-pattern is "
          "Megatron's deprecated name of --hybrid-layer-pattern");
    std::fprintf(stderr, "strata: --hybrid-override-pattern is deprecated; use --hybrid-layer-pattern\n");
  }
  if (const auto& pattern = f.hybrid_layer_pattern ? f.hybrid_layer_pattern : f.hybrid_override_pattern) {
    c.hybrid_layer_pattern = *pattern;
    if (!f.num_layers)
      c.num_layers = parse_layer_pattern(*pattern).num_canonical_layers();  // a pattern counts its layers
  }
  if (f.num_layers) c.num_layers = *f.num_layers;
  const bool pattern_given = f.hybrid_layer_pattern || f.hybrid_override_pattern;
  apply_layer_allocation_flags(f.layer_allocation, pattern_given, c);

  // Megatron uses --num-query-groups only under --group-query-attention, whose default is 1 group.
  if (f.num_query_groups && !f.group_query_attention)
    fail("--num-query-groups ", *f.num_query_groups, ": applies with --group-query-attention (without it Megatron ",
         "ignores it and every head has its own keys and values); add --group-query-attention");
  if (f.group_query_attention) c.num_query_groups = f.num_query_groups.value_or(1);

  if (f.swiglu && f.squared_relu) fail("--swiglu and --squared-relu: give one activation");
  if (f.swiglu) {
    c.gated_linear_unit = true;
    c.activation_func = Activation::SiLU;
  }
  if (f.squared_relu) c.activation_func = Activation::SquaredReLU;

  if (f.no_position_embedding && c.position_embedding_type != PositionEmbeddingType::Rope)
    fail(
        "--no-position-embedding is deprecated and works with --position-embedding-type rope only (as in Megatron); "
        "use --position-embedding-type none");
  apply_rotary_scaling(f, c);
  // --moe-router-pre-softmax: softmax over every expert, the top k kept as they are. Megatron's
  // sigmoid router ignores it.
  if (f.moe_router_pre_softmax && c.moe_router_score_function == "softmax") c.moe_router_norm_topk_prob = false;
  if (f.moe_router_load_balancing_type == "none") c.moe_aux_loss_coeff = 0.0;

  if (f.recompute_activations) c.recompute_granularity = "selective";
  return c;
}

}  // namespace strata::tools
