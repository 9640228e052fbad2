#include "strata/hf/deepseek_v4.h"

#include <algorithm>

#include "strata/core/error.h"
#include "strata/hf/rope_scaling.h"
#include "strata/model/layer_allocation.h"

namespace strata::hf {

namespace {

char attention_symbol(const std::string& layer_type) {
  if (layer_type == "sliding_attention") return 'W';
  if (layer_type == "compressed_sparse_attention") return 'C';
  if (layer_type == "heavily_compressed_attention") return 'H';
  fail("deepseek_v4 config: layer_types holds \"", layer_type,
       "\"; expected sliding_attention, compressed_sparse_attention or heavily_compressed_attention");
}

// A tensor stored under its original DeepSeek name (`disk`) that HF's module holds as `runtime`.
void rename(TensorMap& map, const std::string& name, const std::string& disk, const std::string& runtime) {
  map.add({.name = name,
           .hf_names = {disk},
           .from_hf = [](const std::vector<at::Tensor>& t) { return t[0]; },
           .to_hf = [](const at::Tensor& t) { return std::vector<at::Tensor>{t}; },
           .runtime_names = {runtime},
           .to_runtime = [](const at::Tensor& t) { return std::vector<at::Tensor>{t}; }});
}

// Prefixes of one HF layer: on disk (DeepSeek's names) and in HF's modules.
struct LayerPrefixes {
  std::string disk, runtime;
};

void add_compressor(TensorMap& map, const std::string& st, const LayerPrefixes& hf) {
  rename(map, st + "linear_kv_proj.weight", hf.disk + "wkv.weight", hf.runtime + "kv_proj.weight");
  rename(map, st + "linear_gate_proj.weight", hf.disk + "wgate.weight", hf.runtime + "gate_proj.weight");
  rename(map, st + "position_bias", hf.disk + "ape", hf.runtime + "position_bias");
  rename(map, st + "kv_layernorm.weight", hf.disk + "norm.weight", hf.runtime + "kv_norm.weight");
}

void add_attention(TensorMap& map, SequenceMixerKind kind, const std::string& st, const LayerPrefixes& hf) {
  const LayerPrefixes attn{hf.disk + "attn.", hf.runtime + "self_attn."};
  rename(map, st + "linear_q_down_proj.weight", attn.disk + "wq_a.weight", attn.runtime + "q_a_proj.weight");
  rename(map, st + "q_layernorm.weight", attn.disk + "q_norm.weight", attn.runtime + "q_a_norm.weight");
  rename(map, st + "linear_q_up_proj.weight", attn.disk + "wq_b.weight", attn.runtime + "q_b_proj.weight");
  rename(map, st + "linear_kv_proj.weight", attn.disk + "wkv.weight", attn.runtime + "kv_proj.weight");
  rename(map, st + "kv_layernorm.weight", attn.disk + "norm.weight", attn.runtime + "kv_norm.weight");
  rename(map, st + "attention_sinks", attn.disk + "attn_sink", attn.runtime + "sinks");
  rename(map, st + "linear_grouped_proj.weight", attn.disk + "wo_a.weight", attn.runtime + "o_a_proj.weight");
  rename(map, st + "linear_proj.weight", attn.disk + "wo_b.weight", attn.runtime + "o_b_proj.weight");
  if (kind == SequenceMixerKind::SlidingWindowAttention) return;
  add_compressor(map, st + "compressor.", {attn.disk + "compressor.", attn.runtime + "compressor."});
  if (kind != SequenceMixerKind::CompressedSparseAttention) return;
  // HF nests the indexer in the compressor; DeepSeek's names keep it beside.
  const LayerPrefixes indexer{attn.disk + "indexer.", attn.runtime + "compressor.indexer."};
  add_compressor(map, st + "indexer.compressor.", {indexer.disk + "compressor.", indexer.runtime});
  rename(map, st + "indexer.linear_wq_b.weight", indexer.disk + "wq_b.weight", indexer.runtime + "q_b_proj.weight");
  rename(map, st + "indexer.linear_weights_proj.weight", indexer.disk + "weights_proj.weight",
         indexer.runtime + "scorer.weights_proj.weight");
}

void add_moe(TensorMap& map, const TransformerConfig& c, bool hash_routed, const std::string& st,
             const LayerPrefixes& hf) {
  const LayerPrefixes ffn{hf.disk + "ffn.", hf.runtime + "mlp."};
  const auto rows = c.moe_ffn_hidden_size, shared = c.moe_shared_expert_intermediate_size;
  rename(map, st + "router.weight", ffn.disk + "gate.weight", ffn.runtime + "gate.weight");
  // A hash router (DeepseekV4HashRouter) has its token-id table where a top-k router has its bias;
  // DeepSeek's name and HF's are the same (int64 as HF saves its buffer; int32, as DeepSeek's
  // release stores it, loads too).
  if (hash_routed) {
    rename(map, st + "router.tid2eid", ffn.disk + "gate.tid2eid", ffn.runtime + "gate.tid2eid");
  } else {
    rename(map, st + "router.expert_bias", ffn.disk + "gate.bias", ffn.runtime + "gate.e_score_correction_bias");
  }
  map.stacked_experts(st + "experts.linear_fc1.weight", ffn.disk + "experts.", c.num_moe_experts,
                      {"w1.weight", "w3.weight"}, {rows, rows}, ffn.runtime + "experts.gate_up_proj");
  map.stacked_experts(st + "experts.linear_fc2.weight", ffn.disk + "experts.", c.num_moe_experts, {"w2.weight"},
                      {c.hidden_size}, ffn.runtime + "experts.down_proj");
  const auto shared_disk = ffn.disk + "shared_experts.", shared_runtime = ffn.runtime + "shared_experts.";
  map.add({.name = st + "shared_experts.linear_fc1.weight",
           .hf_names = {shared_disk + "w1.weight", shared_disk + "w3.weight"},
           .from_hf = [](const std::vector<at::Tensor>& t) { return at::cat(t, 0); },
           .to_hf = [shared](const at::Tensor& t) { auto parts = t.split(shared, 0);
             return std::vector<at::Tensor>(parts.begin(), parts.end()); },
           .runtime_names = {shared_runtime + "gate_proj.weight", shared_runtime + "up_proj.weight"},
           .to_runtime = [shared](const at::Tensor& t) { auto parts = t.split(shared, 0);
             return std::vector<at::Tensor>(parts.begin(), parts.end()); }});
  rename(map, st + "shared_experts.linear_fc2.weight", shared_disk + "w2.weight", shared_runtime + "down_proj.weight");
}

void add_hyper_connection(TensorMap& map, const std::string& st, const std::string& disk, const std::string& runtime) {
  for (const char* part : {"fn", "base", "scale"}) rename(map, st + part, disk + part, runtime + part);
}

}  // namespace

std::string deepseek_v4_layer_pattern(const io::DeepseekV4Config& hf) {
  std::string pattern;
  for (const auto& layer_type : hf.layer_types) pattern += cat("[", attention_symbol(layer_type), "E]");
  return pattern;
}

std::vector<int64_t> deepseek_v4_hash_routed_layers(const io::DeepseekV4Config& hf) {
  if (hf.mlp_layer_types.size() != hf.layer_types.size())
    fail("deepseek_v4 config: mlp_layer_types has ", hf.mlp_layer_types.size(), " entries and layer_types ",
         hf.layer_types.size(), "; expected one of each per layer");
  std::vector<int64_t> canonical;
  for (size_t i = 0; i < hf.mlp_layer_types.size(); ++i) {
    const auto& type = hf.mlp_layer_types[i];
    if (type == "hash_moe") {
      canonical.push_back(2 * static_cast<int64_t>(i) + 1);  // HF layer i is "[xE]": canonical 2i and 2i + 1
    } else if (type != "moe") {
      fail("deepseek_v4 config: mlp_layer_types[", i, "] = \"", type, "\"; expected \"moe\" or \"hash_moe\"");
    }
  }
  return canonical;
}

TransformerConfig deepseek_v4_transformer_config(const io::DeepseekV4Config& hf) {
  if (hf.attention_bias) fail("deepseek_v4 config: attention_bias = true is not supported; expected false");
  if (hf.mlp_bias) fail("deepseek_v4 config: mlp_bias = true is not supported; expected false");
  if (hf.num_key_value_heads != 1)
    fail("deepseek_v4 config: num_key_value_heads = ", hf.num_key_value_heads,
         " is not supported; DeepSeek-V4's attention has one shared key/value head (expected 1)");
  auto rate = [&](const char* type, int64_t fallback) {
    auto it = hf.compress_rates.find(type);
    return it == hf.compress_rates.end() ? fallback : it->second;
  };

  TransformerConfig c;
  c.hybrid_layer_pattern = deepseek_v4_layer_pattern(hf);
  c.num_layers = 2 * hf.num_hidden_layers;  // one canonical layer per mixer
  c.hidden_size = hf.hidden_size;
  c.ffn_hidden_size = hf.moe_intermediate_size;  // unused: every layer's channel mixer is a MoE
  c.num_attention_heads = hf.num_attention_heads;
  c.num_query_groups = 1;
  c.kv_channels = hf.head_dim;
  c.vocab_size = hf.vocab_size;
  c.normalization = Normalization::RMSNorm;
  c.layernorm_epsilon = hf.rms_norm_eps;
  c.gated_linear_unit = true;
  c.activation_func = parse_activation(hf.hidden_act, "deepseek_v4 config hidden_act");
  c.activation_func_clamp_value = hf.swiglu_limit;
  c.share_embeddings_and_output_weights = hf.tie_word_embeddings;
  c.position_embedding_type = PositionEmbeddingType::Rope;  // the attention rotates its own part whatever this says
  // What HF's model does where Megatron's defaults differ: no biases, no dropout, a float32
  // residual under autocast (docs/megatron.md).
  c.add_bias_linear = false;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.fp32_residual_connection = true;

  c.q_lora_rank = hf.q_lora_rank;
  c.qk_pos_emb_head_dim = hf.qk_rope_head_dim;
  c.rotary_base = hf.main_rope.rope_theta;
  c.rotary_scaling = rotary_scaling_from_hf(hf.main_rope, "deepseek_v4");
  c.compress_rotary_base = hf.compress_rope.rope_theta;
  c.compress_rotary_scaling = rotary_scaling_from_hf(hf.compress_rope, "deepseek_v4");
  c.sliding_window_size = hf.sliding_window;
  c.csa_compress_rate = rate("compressed_sparse_attention", c.csa_compress_rate);
  c.hca_compress_rate = rate("heavily_compressed_attention", c.hca_compress_rate);
  c.attention_output_groups = hf.o_groups;
  c.attention_output_lora_rank = hf.o_lora_rank;
  c.dsa_indexer_n_heads = hf.index_n_heads;
  c.dsa_indexer_head_dim = hf.index_head_dim;
  c.dsa_indexer_topk = hf.index_topk;

  c.num_moe_experts = hf.n_routed_experts;
  c.moe_router_topk = hf.num_experts_per_tok;
  c.moe_ffn_hidden_size = hf.moe_intermediate_size;
  c.moe_shared_expert_intermediate_size = hf.n_shared_experts * hf.moe_intermediate_size;
  c.moe_router_score_function = hf.scoring_func;
  c.moe_router_enable_expert_bias = true;
  // HF's DeepseekV4TopKRouter renormalises the top-k weights whatever norm_topk_prob says.
  c.moe_router_norm_topk_prob = true;
  c.moe_router_topk_scaling_factor = hf.routed_scaling_factor;
  c.moe_hash_routed_layers = deepseek_v4_hash_routed_layers(hf);

  c.enable_mhc_connections = true;
  c.mhc_num_residual_streams = hf.hc_mult;
  c.mhc_sinkhorn_iterations = hf.hc_sinkhorn_iters;
  c.mhc_eps = hf.hc_eps;
  c.mhc_init_gating_factor = 1.0;  // HF initialises the maps' scales to 1
  validate(c);
  return c;
}

TensorMap deepseek_v4_tensor_map(const TransformerConfig& c) {
  const auto pattern = resolve_layer_pattern(c);
  TensorMap map;
  map.rename("embedding.word_embeddings.weight", "model.embed_tokens.weight");
  for (size_t i = 0; i < pattern.layers.size(); ++i) {
    const auto& layer = pattern.layers[i];
    if (!layer.sequence || layer.channel != ChannelMixerKind::MoE)
      fail("deepseek_v4 tensor map: layer ", i, " of pattern \"", pattern.text,
           "\" is not a fused [WE], [CE] or [HE] layer, as each HF layer is");
    const auto st = cat("decoder.layers.", layer.sequence_canonical(), ".");
    const auto st_channel = cat("decoder.layers.", layer.channel_canonical(), ".");
    const LayerPrefixes hf{cat("model.layers.", i, "."), cat("model.layers.", i, ".")};
    rename(map, st + "input_layernorm.weight", hf.disk + "attn_norm.weight", hf.runtime + "input_layernorm.weight");
    add_hyper_connection(map, st + "self_attn_residual.", hf.disk + "hc_attn_", hf.runtime + "attn_hc.");
    add_attention(map, *layer.sequence, st + "self_attention.", hf);
    rename(map, st_channel + "pre_mlp_layernorm.weight", hf.disk + "ffn_norm.weight",
           hf.runtime + "post_attention_layernorm.weight");
    add_hyper_connection(map, st_channel + "mlp_residual.", hf.disk + "hc_ffn_", hf.runtime + "ffn_hc.");
    const auto& hashed = c.moe_hash_routed_layers;
    const bool hash_routed = std::find(hashed.begin(), hashed.end(), layer.channel_canonical()) != hashed.end();
    add_moe(map, c, hash_routed, st_channel + "mlp.", hf);
  }
  for (const char* part : {"hc_fn", "hc_base", "hc_scale"})
    map.rename(cat("decoder.hyper_connection_head.", part), cat("model.hc_head.", part));
  map.rename("decoder.final_layernorm.weight", "model.norm.weight");
  if (!c.share_embeddings_and_output_weights) rename(map, "output_layer.weight", "head.weight", "lm_head.weight");
  return map;
}

}  // namespace strata::hf
