#include "strata/hf/deepseek_v32.h"

#include "strata/core/error.h"
#include "strata/hf/common_maps.h"
#include "strata/hf/layer_schedule.h"
#include "strata/hf/rope_scaling.h"
#include "strata/model/layer_allocation.h"

namespace strata::hf {

namespace {

// Rows of `weight` [groups * group_rows, in] in strata's order from HF's: within each group, the
// rope_dim rows from rope_offset on are reordered to the even ones, then the odd ones.
at::Tensor rope_row_order(int64_t group_rows, int64_t rope_offset, int64_t rope_dim) {
  auto order = at::arange(group_rows, at::kLong);
  auto rope = at::arange(rope_offset, rope_offset + rope_dim, at::kLong);
  order.narrow(0, rope_offset, rope_dim).copy_(at::cat({rope.slice(0, 0, rope_dim, 2), rope.slice(0, 1, rope_dim, 2)}));
  return order;
}

// A projection whose rows per group end in a position part that DeepSeek rotates as interleaved
// pairs: strata's copy has those rows in "rotate half" order (see deepseek_v32.h).
void add_interleaved_rope_rows(TensorMap& map, const std::string& name, const std::string& hf_name, int64_t group_rows,
                               int64_t rope_offset, int64_t rope_dim) {
  auto to_strata = rope_row_order(group_rows, rope_offset, rope_dim);
  auto to_hf = at::argsort(to_strata);
  auto reorder = [group_rows](const at::Tensor& t, const at::Tensor& order) {
    return t.view({-1, group_rows, t.size(-1)}).index_select(1, order.to(t.device())).reshape(t.sizes());
  };
  map.add({name, {hf_name}, [=](const std::vector<at::Tensor>& t) { return reorder(t[0], to_strata); },
           [=](const at::Tensor& t) { return std::vector<at::Tensor>{reorder(t, to_hf)}; }});
}

void add_sparse_attention(TensorMap& map, const TransformerConfig& c, const std::string& st, const std::string& hf) {
  const auto rope = c.qk_pos_emb_head_dim;
  map.rename(st + "linear_q_down_proj.weight", hf + "q_a_proj.weight");
  map.rename(st + "q_layernorm.weight", hf + "q_a_layernorm.weight");
  add_interleaved_rope_rows(map, st + "linear_q_up_proj.weight", hf + "q_b_proj.weight", c.qk_head_dim + rope,
                            c.qk_head_dim, rope);
  add_interleaved_rope_rows(map, st + "linear_kv_down_proj.weight", hf + "kv_a_proj_with_mqa.weight",
                            c.kv_lora_rank + rope, c.kv_lora_rank, rope);
  map.rename(st + "kv_layernorm.weight", hf + "kv_a_layernorm.weight");
  map.rename(st + "linear_kv_up_proj.weight", hf + "kv_b_proj.weight");
  map.rename(st + "linear_proj.weight", hf + "o_proj.weight");
  const auto indexer = st + "core_attention.indexer.";
  map.rename(indexer + "linear_wq_b.weight", hf + "indexer.wq_b.weight");
  map.rename(indexer + "linear_wk.weight", hf + "indexer.wk.weight");
  map.rename(indexer + "k_norm.weight", hf + "indexer.k_norm.weight");
  map.rename(indexer + "k_norm.bias", hf + "indexer.k_norm.bias");
  map.rename(indexer + "linear_weights_proj.weight", hf + "indexer.weights_proj.weight");
}

void add_moe(TensorMap& map, const TransformerConfig& c, const std::string& st, const std::string& hf) {
  const auto ffn = c.moe_ffn_hidden_size, shared = c.moe_shared_expert_intermediate_size;
  map.rename(st + "router.weight", hf + "gate.weight");
  map.rename(st + "router.expert_bias", hf + "gate.e_score_correction_bias");
  map.stacked_experts(st + "experts.linear_fc1.weight", hf + "experts.", c.num_moe_experts,
                      {"gate_proj.weight", "up_proj.weight"}, {ffn, ffn}, hf + "experts.gate_up_proj");
  map.stacked_experts(st + "experts.linear_fc2.weight", hf + "experts.", c.num_moe_experts, {"down_proj.weight"},
                      {c.hidden_size}, hf + "experts.down_proj");
  add_swiglu_mlp(map, st + "shared_experts.", hf + "shared_experts.", shared);
}

}  // namespace

std::string deepseek_v32_layer_pattern(const io::DeepseekV32Config& hf) {
  std::string pattern;
  for (const auto& mlp : hf.mlp_layer_types) pattern += mlp == "sparse" ? "[DE]" : "[D-]";
  // Each MTP layer is a decoder layer like the last (DeepSeek-V3's are MoE layers).
  const std::string last = hf.mlp_layer_types.back() == "sparse" ? "[DE]" : "[D-]";
  for (int64_t d = 0; d < hf.num_nextn_predict_layers; ++d) pattern += "/" + last;
  return pattern;
}

TransformerConfig deepseek_v32_transformer_config(const io::DeepseekV32Config& hf) {
  if (hf.attention_bias)
    fail("deepseek_v32 config: attention_bias = true (biases on q_a_proj, kv_a_proj_with_mqa and o_proj) is not "
         "supported; expected false");
  if (hf.mlp_bias) fail("deepseek_v32 config: mlp_bias = true is not supported; expected false");
  const auto rotary_scaling = rotary_scaling_from_hf(hf.rope, "deepseek_v32");
  // HF's DeepSeek attention applies mscale_all_dim to its softmax under any scaled rope_type;
  // strata's MLA does under YaRN, the one type DeepSeek ships it with.
  const auto mscale_all_dim = hf.rope.mscale_all_dim.value_or(0.0);
  if (mscale_all_dim != 0.0 && rotary_scaling.kind != RotaryScalingKind::Yarn)
    fail("deepseek_v32 config: ", hf.rope.origin, ".mscale_all_dim = ", mscale_all_dim, " with rope_type \"",
         hf.rope.rope_type, "\" is not supported; expected it with rope_type \"yarn\" only");
  const bool has_moe = deepseek_v32_layer_pattern(hf).find('E') != std::string::npos;
  if (has_moe && hf.topk_group < hf.n_group)
    fail("deepseek_v32 config: n_group = ", hf.n_group, ", topk_group = ", hf.topk_group,
         ": group-limited expert routing is not supported; expected topk_group >= n_group (every group eligible)");

  TransformerConfig c;
  c.hybrid_layer_pattern = deepseek_v32_layer_pattern(hf);
  c.num_layers = 2 * hf.num_hidden_layers;  // one canonical layer per mixer
  c.mtp_num_layers = hf.num_nextn_predict_layers;
  c.hidden_size = hf.hidden_size;
  // Only dense layers use ffn_hidden_size; a model without any still needs a valid one.
  c.ffn_hidden_size = hf.intermediate_size > 0 ? hf.intermediate_size : hf.moe_intermediate_size;
  c.num_attention_heads = hf.num_attention_heads;
  c.num_query_groups = hf.num_attention_heads;
  // Unused by MLA (it has its own head sizes and rotary tables); the query/key head width.
  c.kv_channels = hf.qk_nope_head_dim + hf.qk_rope_head_dim;
  c.vocab_size = hf.vocab_size;
  c.normalization = Normalization::RMSNorm;
  c.layernorm_epsilon = hf.rms_norm_eps;
  c.gated_linear_unit = true;
  c.activation_func = parse_activation(hf.hidden_act, "deepseek_v32 config hidden_act");
  c.rotary_base = hf.rope.rope_theta;
  c.rotary_scaling = rotary_scaling;
  c.share_embeddings_and_output_weights = hf.tie_word_embeddings;
  c.position_embedding_type = PositionEmbeddingType::Rope;  // MLA rotates its own part whatever this says
  // What HF's model does where Megatron's defaults differ: no biases, no dropout, a float32
  // residual under autocast (docs/megatron.md).
  c.add_bias_linear = false;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.fp32_residual_connection = true;

  c.q_lora_rank = hf.q_lora_rank;
  c.kv_lora_rank = hf.kv_lora_rank;
  c.qk_head_dim = hf.qk_nope_head_dim;
  c.qk_pos_emb_head_dim = hf.qk_rope_head_dim;
  c.v_head_dim = hf.v_head_dim;
  c.dsa_indexer_n_heads = hf.index_n_heads;
  c.dsa_indexer_head_dim = hf.index_head_dim;
  c.dsa_indexer_topk = hf.index_topk;

  if (has_moe) {
    c.num_moe_experts = hf.n_routed_experts;
    c.moe_router_topk = hf.num_experts_per_tok;
    c.moe_ffn_hidden_size = hf.moe_intermediate_size;
    c.moe_shared_expert_intermediate_size = hf.n_shared_experts * hf.moe_intermediate_size;
    c.moe_router_score_function = "sigmoid";
    c.moe_router_enable_expert_bias = true;
    c.moe_router_norm_topk_prob = hf.norm_topk_prob;
    c.moe_router_topk_scaling_factor = hf.routed_scaling_factor;
  }
  validate(c);
  return c;
}

io::DeepseekV32Config deepseek_v32_hf_config(const TransformerConfig& c) {
  const auto pairs = mixer_pairs(resolve_layer_pattern(c).layers, "deepseek_v32");
  io::DeepseekV32Config hf;
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (pairs[i].first != SequenceMixerKind::DeepSeekSparseAttention)
      fail("deepseek_v32: layer ", i, " is ", name(pairs[i].first),
           "; every DeepSeek-V3.2 layer is DeepSeek sparse attention");
    hf.mlp_layer_types.push_back(pairs[i].second == ChannelMixerKind::MoE ? "sparse" : "dense");
  }
  hf.num_hidden_layers = int64_t(pairs.size());
  hf.layer_types.assign(pairs.size(), "deepseek_sparse_attention");
  hf.first_k_dense_replace = 0;
  while (hf.first_k_dense_replace < hf.num_hidden_layers && hf.mlp_layer_types[hf.first_k_dense_replace] == "dense")
    ++hf.first_k_dense_replace;
  hf.num_nextn_predict_layers = int64_t(resolve_mtp_depths(c).size());
  hf.vocab_size = c.vocab_size;
  hf.hidden_size = c.hidden_size;
  hf.num_attention_heads = c.num_attention_heads;
  hf.rms_norm_eps = c.layernorm_epsilon;
  hf.tie_word_embeddings = c.share_embeddings_and_output_weights;
  hf.hidden_act = hf_activation_name(c.activation_func);
  hf.q_lora_rank = c.q_lora_rank;
  hf.kv_lora_rank = c.kv_lora_rank;
  hf.qk_nope_head_dim = c.qk_head_dim;
  hf.qk_rope_head_dim = c.qk_pos_emb_head_dim;
  hf.v_head_dim = c.v_head_dim;
  hf.attention_bias = false;
  hf.rope = rope_parameters_from(c.rotary_base, 1.0, c.rotary_scaling);
  hf.index_n_heads = c.dsa_indexer_n_heads;
  hf.index_head_dim = c.dsa_indexer_head_dim;
  hf.index_topk = c.dsa_indexer_topk;
  hf.intermediate_size = c.ffn_hidden_size;
  hf.mlp_bias = false;
  hf.n_group = 1;
  hf.topk_group = 1;
  hf.norm_topk_prob = c.moe_router_norm_topk_prob;
  if (hf.first_k_dense_replace == hf.num_hidden_layers) {  // no MoE layer: HF's (DeepSeek-V3's) defaults, unused
    hf.n_routed_experts = 256;
    hf.num_experts_per_tok = 8;
    hf.moe_intermediate_size = 2048;
    hf.n_shared_experts = 1;
    hf.routed_scaling_factor = 2.5;
    return hf;
  }
  hf.n_routed_experts = c.num_moe_experts;
  hf.num_experts_per_tok = c.moe_router_topk;
  hf.moe_intermediate_size = c.moe_ffn_hidden_size;
  // DeepSeek's shared expert is n_shared_experts experts wide.
  const auto shared = c.moe_shared_expert_intermediate_size, expert = c.moe_ffn_hidden_size;
  if (shared % expert != 0)
    fail("deepseek_v32: moe_shared_expert_intermediate_size ", shared, " is not a multiple of moe_ffn_hidden_size ",
         expert, " (DeepSeek's shared expert is n_shared_experts x moe_intermediate_size wide)");
  hf.n_shared_experts = shared / expert;
  hf.routed_scaling_factor = c.moe_router_topk_scaling_factor;
  return hf;
}

// One HF decoder layer (model.layers.<i>.) as strata's fused [D-] / [DE] layer under `st_prefix`
// ("decoder." or an MTP depth's "mtp.layers.<d>.mtp_model_layer.").
void add_decoder_layer(TensorMap& map, const TransformerConfig& c, const PatternLayer& layer,
                       const std::string& st_prefix, const std::string& hf, const std::string& pattern_text) {
  if (layer.sequence != SequenceMixerKind::DeepSeekSparseAttention || !layer.channel)
    fail("deepseek_v32 tensor map: ", hf, " of pattern \"", pattern_text,
         "\" is not a fused [D-] or [DE] layer, as each HF layer is");
  const auto st = cat(st_prefix, "layers.", layer.sequence_canonical(), ".");
  const auto st_channel = cat(st_prefix, "layers.", layer.channel_canonical(), ".");
  map.rename(st + "input_layernorm.weight", hf + "input_layernorm.weight");
  add_sparse_attention(map, c, st + "self_attention.", hf + "self_attn.");
  map.rename(st_channel + "pre_mlp_layernorm.weight", hf + "post_attention_layernorm.weight");
  if (*layer.channel == ChannelMixerKind::MoE)
    add_moe(map, c, st_channel + "mlp.", hf + "mlp.");
  else
    add_swiglu_mlp(map, st_channel + "mlp.", hf + "mlp.", c.ffn_hidden_size);
}

TensorMap deepseek_v32_tensor_map(const TransformerConfig& c) {
  const auto pattern = resolve_layer_pattern(c);
  TensorMap map;
  map.rename("embedding.word_embeddings.weight", "model.embed_tokens.weight");
  for (size_t i = 0; i < pattern.layers.size(); ++i)
    add_decoder_layer(map, c, pattern.layers[i], "decoder.", cat("model.layers.", i, "."), pattern.text);
  add_final_norm_and_output(map, c, "model.norm.weight");
  // MTP depth d is HF's layer num_hidden_layers + d: the decoder layer's tensors plus enorm, hnorm,
  // eh_proj, shared_head.norm, and copies of the embedding and output head it shares.
  for (size_t d = 0; d < pattern.mtp.size(); ++d) {
    if (pattern.mtp[d].size() != 1)
      fail("deepseek_v32 tensor map: MTP depth ", d + 1, " of pattern \"", pattern.text,
           "\" is not one fused [D-] or [DE] layer, as each HF MTP layer is");
    const auto hf = cat("model.layers.", pattern.layers.size() + d, ".");
    const auto st = cat("mtp.layers.", d, ".");
    add_decoder_layer(map, c, pattern.mtp[d].front(), st + "mtp_model_layer.", hf, pattern.text);
    for (const char* norm : {"enorm", "hnorm"}) map.rename(cat(st, norm, ".weight"), cat(hf, norm, ".weight"));
    map.rename(st + "eh_proj.weight", hf + "eh_proj.weight");
    map.rename(st + "final_layernorm.weight", hf + "shared_head.norm.weight");
    map.duplicate("embedding.word_embeddings.weight", hf + "embed_tokens.weight");
    map.duplicate(c.share_embeddings_and_output_weights ? "embedding.word_embeddings.weight" : "output_layer.weight",
                  hf + "shared_head.head.weight");
  }
  return map;
}

}  // namespace strata::hf
