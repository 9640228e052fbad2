#include "strata/hf/qwen3.h"

#include "strata/core/error.h"
#include "strata/hf/common_maps.h"
#include "strata/hf/layer_schedule.h"
#include "strata/hf/rope_scaling.h"
#include "strata/model/layer_allocation.h"

namespace strata::hf {

TransformerConfig qwen3_transformer_config(const io::Qwen3Config& hf) {
  if (hf.attention_bias)
    fail("qwen3 config: attention_bias = true (biases on q/k/v and o_proj) is not supported; expected false");
  TransformerConfig c;
  c.num_layers = hf.num_hidden_layers;
  c.hidden_size = hf.hidden_size;
  c.ffn_hidden_size = hf.intermediate_size;
  c.num_attention_heads = hf.num_attention_heads;
  c.num_query_groups = hf.num_key_value_heads;
  c.kv_channels = hf.head_dim;
  c.vocab_size = hf.vocab_size;
  c.normalization = Normalization::RMSNorm;
  c.layernorm_epsilon = hf.rms_norm_eps;
  c.qk_layernorm = true;
  c.gated_linear_unit = true;
  c.activation_func = parse_activation(hf.hidden_act, "qwen3 config hidden_act");
  c.rotary_base = hf.rope.rope_theta;
  c.rotary_percent = hf.rope.partial_rotary_factor;
  c.rotary_scaling = rotary_scaling_from_hf(hf.rope, "qwen3");
  c.share_embeddings_and_output_weights = hf.tie_word_embeddings;
  c.position_embedding_type = PositionEmbeddingType::Rope;
  // What HF's model does where Megatron's defaults differ: no biases, no dropout, a float32
  // residual under autocast (docs/megatron.md).
  c.add_bias_linear = false;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.fp32_residual_connection = true;
  validate(c);
  return c;
}

io::Qwen3Config qwen3_hf_config(const TransformerConfig& c) {
  const auto pairs = mixer_pairs(resolve_layer_pattern(c).layers, "qwen3");
  for (size_t i = 0; i < pairs.size(); ++i)
    if (pairs[i] != std::pair{SequenceMixerKind::Attention, ChannelMixerKind::Mlp})
      fail("qwen3: layer ", i, " is ", name(pairs[i].first), " + ", name(pairs[i].second),
           "; every Qwen3 layer is attention + a dense MLP");
  return qwen3_shared_hf_fields(c, int64_t(pairs.size()));
}

io::Qwen3Config qwen3_shared_hf_fields(const TransformerConfig& c, int64_t num_layers) {
  io::Qwen3Config hf;
  hf.vocab_size = c.vocab_size;
  hf.hidden_size = c.hidden_size;
  hf.intermediate_size = c.ffn_hidden_size;
  hf.num_hidden_layers = num_layers;
  hf.num_attention_heads = c.num_attention_heads;
  hf.num_key_value_heads = c.num_query_groups;
  hf.head_dim = c.kv_channels;
  hf.rms_norm_eps = c.layernorm_epsilon;
  hf.rope = rope_parameters_from(c.rotary_base, c.rotary_percent, c.rotary_scaling);
  hf.tie_word_embeddings = c.share_embeddings_and_output_weights;
  hf.attention_bias = false;
  hf.hidden_act = hf_activation_name(c.activation_func);
  return hf;
}

TensorMap qwen3_tensor_map(const TransformerConfig& c) {
  TensorMap map;
  map.rename("embedding.word_embeddings.weight", "model.embed_tokens.weight");
  // Canonical numbering: HF layer i is strata's attention layer 2i and MLP layer 2i + 1.
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const auto hf = cat("model.layers.", i, ".");
    const auto st = cat("decoder.layers.", 2 * i, ".");
    const auto st_mlp = cat("decoder.layers.", 2 * i + 1, ".");
    map.rename(st + "input_layernorm.weight", hf + "input_layernorm.weight");
    map.grouped_qkv(st + "self_attention.linear_qkv.weight", hf + "self_attn.q_proj.weight",
                    hf + "self_attn.k_proj.weight", hf + "self_attn.v_proj.weight", c.num_query_groups,
                    c.num_attention_heads / c.num_query_groups, c.kv_channels);
    map.rename(st + "self_attention.q_layernorm.weight", hf + "self_attn.q_norm.weight");
    map.rename(st + "self_attention.k_layernorm.weight", hf + "self_attn.k_norm.weight");
    map.rename(st + "self_attention.linear_proj.weight", hf + "self_attn.o_proj.weight");
    map.rename(st_mlp + "pre_mlp_layernorm.weight", hf + "post_attention_layernorm.weight");
    add_swiglu_mlp(map, st_mlp + "mlp.", hf + "mlp.", c.ffn_hidden_size);
  }
  add_final_norm_and_output(map, c, "model.norm.weight");
  return map;
}

}  // namespace strata::hf
