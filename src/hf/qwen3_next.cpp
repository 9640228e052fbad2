#include "strata/hf/qwen3_next.h"

#include <algorithm>

#include "strata/core/error.h"
#include "strata/hf/common_maps.h"
#include "strata/hf/gated_delta_net_layout.h"
#include "strata/hf/layer_schedule.h"
#include "strata/hf/qwen3.h"
#include "strata/hf/rope_scaling.h"
#include "strata/model/layer_allocation.h"

namespace strata::hf {

namespace {

// HF's Qwen3NextDecoderLayer: a MoE unless the layer is listed in mlp_only_layers or falls
// between the decoder_sparse_step-th layers.
bool is_moe_layer(const io::Qwen3NextConfig& hf, int64_t layer) {
  const bool dense_listed = std::find(hf.mlp_only_layers.begin(), hf.mlp_only_layers.end(), layer) !=
                            hf.mlp_only_layers.end();
  return !dense_listed && hf.num_experts > 0 && (layer + 1) % hf.decoder_sparse_step == 0;
}

void add_gated_delta_net(TensorMap& map, const TransformerConfig& c, const std::string& st, const std::string& hf) {
  const auto nk = c.linear_num_key_heads, nv = c.linear_num_value_heads;
  const auto dk = c.linear_key_head_dim, dv = c.linear_value_head_dim;
  map.add({st + "in_proj.weight",
           {hf + "in_proj_qkvz.weight", hf + "in_proj_ba.weight"},
           [=](const std::vector<at::Tensor>& t) { return gdn_in_proj_from_hf(t[0], t[1], nk, nv, dk, dv); },
           [=](const at::Tensor& t) {
             auto [qkvz, ba] = gdn_in_proj_to_hf(t, nk, nv, dk, dv);
             return std::vector<at::Tensor>{qkvz, ba};
           }});
  // HF's conv runs over [q; k; v] with each kind's heads together, strata's order too.
  map.rename(st + "conv1d.weight", hf + "conv1d.weight");
  map.rename(st + "dt_bias", hf + "dt_bias");
  map.rename(st + "A_log", hf + "A_log");
  map.rename(st + "out_norm.weight", hf + "norm.weight");
  map.rename(st + "out_proj.weight", hf + "out_proj.weight");
}

void add_gated_attention(TensorMap& map, const TransformerConfig& c, const std::string& st, const std::string& hf) {
  map.grouped_qkv(st + "linear_qkv.weight", hf + "q_proj.weight", hf + "k_proj.weight", hf + "v_proj.weight",
                  c.num_query_groups, c.num_attention_heads / c.num_query_groups, c.kv_channels,
                  /*output_gate=*/true);
  map.rename(st + "q_layernorm.weight", hf + "q_norm.weight");
  map.rename(st + "k_layernorm.weight", hf + "k_norm.weight");
  map.rename(st + "linear_proj.weight", hf + "o_proj.weight");
}

void add_moe(TensorMap& map, const TransformerConfig& c, const std::string& st, const std::string& hf) {
  const auto ffn = c.moe_ffn_hidden_size;
  map.rename(st + "router.weight", hf + "gate.weight");
  map.stacked_experts(st + "experts.linear_fc1.weight", hf + "experts.", c.num_moe_experts,
                      {"gate_proj.weight", "up_proj.weight"}, {ffn, ffn}, hf + "experts.gate_up_proj");
  map.stacked_experts(st + "experts.linear_fc2.weight", hf + "experts.", c.num_moe_experts, {"down_proj.weight"},
                      {c.hidden_size}, hf + "experts.down_proj");
  const auto shared = c.moe_shared_expert_intermediate_size;
  add_swiglu_mlp(map, st + "shared_experts.", hf + "shared_expert.", shared);
  map.rename(st + "shared_experts_gate.weight", hf + "shared_expert_gate.weight");
}

}  // namespace

std::string qwen3_next_layer_pattern(const io::Qwen3NextConfig& hf) {
  std::string pattern;
  for (int64_t i = 0; i < hf.base.num_hidden_layers; ++i)
    pattern += cat("[", hf.layer_types[i] == "linear_attention" ? 'G' : '*', is_moe_layer(hf, i) ? 'E' : '-', "]");
  return pattern;
}

TransformerConfig qwen3_next_transformer_config(const io::Qwen3NextConfig& hf) {
  const auto& base = hf.base;
  if (base.attention_bias)
    fail("qwen3_next config: attention_bias = true (biases on q/k/v and o_proj) is not supported; expected false");
  TransformerConfig c;
  c.hybrid_layer_pattern = qwen3_next_layer_pattern(hf);
  c.num_layers = 2 * base.num_hidden_layers;  // one canonical layer per mixer
  c.hidden_size = base.hidden_size;
  c.ffn_hidden_size = base.intermediate_size;
  c.num_attention_heads = base.num_attention_heads;
  c.num_query_groups = base.num_key_value_heads;
  c.kv_channels = base.head_dim;
  c.vocab_size = base.vocab_size;
  c.normalization = Normalization::RMSNorm;
  c.layernorm_epsilon = base.rms_norm_eps;
  c.layernorm_zero_centered_gamma = true;  // Qwen3NextRMSNorm: x_normed * (1 + w)
  c.qk_layernorm = true;
  c.gated_linear_unit = true;
  c.activation_func = parse_activation(base.hidden_act, "qwen3_next config hidden_act");
  c.rotary_base = base.rope.rope_theta;
  c.rotary_percent = base.rope.partial_rotary_factor;
  c.rotary_scaling = rotary_scaling_from_hf(base.rope, "qwen3_next");
  c.share_embeddings_and_output_weights = base.tie_word_embeddings;
  c.position_embedding_type = PositionEmbeddingType::Rope;
  // What HF's model does where Megatron's defaults differ: no biases, no dropout, a float32
  // residual under autocast (docs/megatron.md).
  c.add_bias_linear = false;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.fp32_residual_connection = true;
  c.attention_output_gate = true;

  c.linear_conv_kernel_dim = hf.linear_conv_kernel_dim;
  c.linear_key_head_dim = hf.linear_key_head_dim;
  c.linear_value_head_dim = hf.linear_value_head_dim;
  c.linear_num_key_heads = hf.linear_num_key_heads;
  c.linear_num_value_heads = hf.linear_num_value_heads;

  c.num_moe_experts = hf.num_experts;
  c.moe_router_topk = hf.num_experts_per_tok;
  c.moe_ffn_hidden_size = hf.moe_intermediate_size;
  c.moe_shared_expert_intermediate_size = hf.shared_expert_intermediate_size;
  c.moe_shared_expert_gate = true;
  c.moe_router_score_function = "softmax";
  c.moe_router_norm_topk_prob = hf.norm_topk_prob;
  // As Megatron's bridges map it. HF pools one load-balancing loss over all layers' router
  // outputs (and only with output_router_logits); strata, as Megatron, adds one per MoE layer.
  c.moe_aux_loss_coeff = hf.router_aux_loss_coef;
  validate(c);
  return c;
}

namespace {
// Under gdn2 the 'G' layers are Gated DeltaNet-2 (different in_proj rows, per-channel dt_bias and
// gates), which no HF architecture has: refused rather than mapped onto Qwen3-Next's GDN.
void refuse_gated_delta_net2(const TransformerConfig& c, const LayerPattern& pattern, const char* where) {
  if (c.experimental_attention_variant != "gdn2") return;
  for (const auto& layer : pattern.layers)
    if (layer.sequence == SequenceMixerKind::GatedDeltaNet)
      fail(where, ": the 'G' layers are Gated DeltaNet-2 (experimental_attention_variant gdn2), which has no HF ",
           "model (Qwen3-Next's linear attention is Gated DeltaNet, variant gdn); strata keeps gdn2 models in its own ",
           "checkpoints");
}
}  // namespace

io::Qwen3NextConfig qwen3_next_hf_config(const TransformerConfig& c) {
  refuse_gated_delta_net2(c, resolve_layer_pattern(c), "qwen3_next");
  const auto pairs = mixer_pairs(resolve_layer_pattern(c).layers, "qwen3_next");
  io::Qwen3NextConfig hf;
  hf.base = qwen3_shared_hf_fields(c, int64_t(pairs.size()));
  bool has_moe = false, has_linear_attention = false;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto [sequence, channel] = pairs[i];
    if (sequence != SequenceMixerKind::GatedDeltaNet && sequence != SequenceMixerKind::Attention)
      fail("qwen3_next: layer ", i, " is ", name(sequence), "; Qwen3-Next layers are Gated DeltaNet or attention");
    hf.layer_types.push_back(sequence == SequenceMixerKind::GatedDeltaNet ? "linear_attention" : "full_attention");
    if (channel == ChannelMixerKind::Mlp) hf.mlp_only_layers.push_back(int64_t(i));
    has_moe = has_moe || channel == ChannelMixerKind::MoE;
    has_linear_attention = has_linear_attention || sequence == SequenceMixerKind::GatedDeltaNet;
  }
  hf.decoder_sparse_step = 1;
  // Sizes of a kind of layer the model lacks are HF's defaults, which then size nothing.
  hf.linear_conv_kernel_dim = has_linear_attention ? c.linear_conv_kernel_dim : 4;
  hf.linear_key_head_dim = has_linear_attention ? c.linear_key_head_dim : 128;
  hf.linear_value_head_dim = has_linear_attention ? c.linear_value_head_dim : 128;
  hf.linear_num_key_heads = has_linear_attention ? c.linear_num_key_heads : 16;
  hf.linear_num_value_heads = has_linear_attention ? c.linear_num_value_heads : 32;
  hf.num_experts = has_moe ? c.num_moe_experts : 512;
  hf.num_experts_per_tok = has_moe ? c.moe_router_topk : 10;
  hf.moe_intermediate_size = has_moe ? c.moe_ffn_hidden_size : 512;
  hf.shared_expert_intermediate_size = has_moe ? c.moe_shared_expert_intermediate_size : 512;
  hf.norm_topk_prob = c.moe_router_norm_topk_prob;
  hf.router_aux_loss_coef = c.moe_aux_loss_coeff;
  return hf;
}

TensorMap qwen3_next_tensor_map(const TransformerConfig& c) {
  const auto pattern = resolve_layer_pattern(c);
  refuse_gated_delta_net2(c, pattern, "qwen3_next tensor map");
  TensorMap map;
  map.rename("embedding.word_embeddings.weight", "model.embed_tokens.weight");
  for (size_t i = 0; i < pattern.layers.size(); ++i) {
    const auto& layer = pattern.layers[i];
    if (!layer.sequence || !layer.channel)
      fail("qwen3_next tensor map: layer ", i, " of pattern \"", pattern.text,
           "\" is a single mixer; expected each HF layer fused as [sequence mixer, channel mixer]");
    const auto hf = cat("model.layers.", i, ".");
    const auto st = cat("decoder.layers.", layer.sequence_canonical(), ".");
    const auto st_channel = cat("decoder.layers.", layer.channel_canonical(), ".");
    map.rename(st + "input_layernorm.weight", hf + "input_layernorm.weight");
    if (*layer.sequence == SequenceMixerKind::GatedDeltaNet)
      add_gated_delta_net(map, c, st + "self_attention.", hf + "linear_attn.");
    else if (*layer.sequence == SequenceMixerKind::Attention)
      add_gated_attention(map, c, st + "self_attention.", hf + "self_attn.");
    else
      fail("qwen3_next tensor map: layer ", i, " of pattern \"", pattern.text, "\" has sequence mixer '",
           symbol(*layer.sequence), "'; expected 'G' (Gated DeltaNet) or '*' (attention)");
    map.rename(st_channel + "pre_mlp_layernorm.weight", hf + "post_attention_layernorm.weight");
    if (*layer.channel == ChannelMixerKind::MoE)
      add_moe(map, c, st_channel + "mlp.", hf + "mlp.");
    else
      add_swiglu_mlp(map, st_channel + "mlp.", hf + "mlp.", c.ffn_hidden_size);
  }
  add_final_norm_and_output(map, c, "model.norm.weight");
  return map;
}

}  // namespace strata::hf
