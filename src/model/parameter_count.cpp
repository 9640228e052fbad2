#include "strata/model/parameter_count.h"

#include "strata/model/layer_allocation.h"

namespace strata {

namespace {

// Each count below mirrors one layer's constructor (src/layers/): when a layer gains or loses a
// parameter, its count here changes with it, or parameter_count_test fails.

int64_t norm(const TransformerConfig& c, int64_t size) {
  return c.normalization == Normalization::RMSNorm ? size : 2 * size;  // LayerNorm: weight and bias
}

// A linear layer's weight, and its bias when it has one.
int64_t linear(int64_t input, int64_t output, bool bias) { return input * output + (bias ? output : 0); }

int64_t mlp(const TransformerConfig& c, int64_t ffn) {
  const auto h = c.hidden_size;
  return linear(h, c.gated_linear_unit ? 2 * ffn : ffn, c.add_bias_linear) + linear(ffn, h, c.add_bias_linear);
}

int64_t attention(const TransformerConfig& c) {
  const auto h = c.hidden_size, kv = c.kv_channels;
  const auto query_rows = (c.attention_output_gate ? 2 : 1) * c.num_attention_heads;
  return linear(h, (query_rows + 2 * c.num_query_groups) * kv, c.add_bias_linear || c.add_qkv_bias) +
         (c.qk_layernorm ? 2 * norm(c, kv) : 0) + linear(c.num_attention_heads * kv, h, c.add_bias_linear);
}

int64_t gated_delta_net(const TransformerConfig& c) {
  const auto keys = c.linear_num_key_heads * c.linear_key_head_dim;
  const auto values = c.linear_num_value_heads * c.linear_value_head_dim;
  const auto conv_channels = 2 * keys + values;
  return linear(c.hidden_size, conv_channels + values + 2 * c.linear_num_value_heads, false) +
         conv_channels * c.linear_conv_kernel_dim +  // depthwise conv, no bias
         2 * c.linear_num_value_heads +              // dt_bias, A_log
         c.linear_value_head_dim +                   // the gated norm, shared by the heads
         linear(values, c.hidden_size, false);
}

// in_proj [q k v | z | f | b | w], per-key-channel dt_bias, per-key-head A_log.
int64_t gated_delta_net2(const TransformerConfig& c) {
  const auto keys = c.linear_num_key_heads * c.linear_key_head_dim;
  const auto values = c.linear_num_value_heads * c.linear_value_head_dim;
  const auto conv_channels = 2 * keys + values;
  return linear(c.hidden_size, conv_channels + values + 2 * keys + values, false) +
         conv_channels * c.linear_conv_kernel_dim +  // depthwise conv, no bias
         keys + c.linear_num_key_heads +             // dt_bias, A_log
         c.linear_value_head_dim +                   // the gated norm, shared by the heads
         linear(values, c.hidden_size, false);
}

int64_t mamba2(const TransformerConfig& c) {
  const auto heads = c.mamba_heads();
  const auto inner = heads * c.mamba_head_dim;
  const auto conv_channels = inner + 2 * c.mamba_num_groups * c.mamba_state_dim;
  return linear(c.hidden_size, inner + conv_channels + heads, c.mamba_proj_bias) +
         conv_channels * c.mamba_conv_kernel_dim + (c.mamba_conv_bias ? conv_channels : 0) +
         3 * heads +  // dt_bias, A_log, D
         inner +      // the grouped gated norm
         linear(inner, c.hidden_size, c.mamba_proj_bias);
}

int64_t latent_attention(const TransformerConfig& c, bool sparse) {
  const auto h = c.hidden_size, heads = c.num_attention_heads;
  const auto q_head = c.qk_head_dim + c.qk_pos_emb_head_dim;
  // The down and up projections have no bias; linear_proj follows add_bias_linear.
  int64_t count = c.q_lora_rank > 0 ? linear(h, c.q_lora_rank, false) + norm(c, c.q_lora_rank) +
                                          linear(c.q_lora_rank, heads * q_head, false)
                                    : linear(h, heads * q_head, false);
  count += linear(h, c.kv_lora_rank + c.qk_pos_emb_head_dim, false) + norm(c, c.kv_lora_rank) +
           linear(c.kv_lora_rank, heads * (c.qk_head_dim + c.v_head_dim), false) +
           linear(heads * c.v_head_dim, h, c.add_bias_linear);
  if (sparse) {  // the lightning indexer: no biases, a LayerNorm on its keys whatever the model's norm
    const auto n = c.dsa_indexer_n_heads, d = c.dsa_indexer_head_dim;
    count += c.q_lora_rank * n * d + h * d + 2 * d + h * n;
  }
  return count;
}

// A KV compressor (layers/kv_compressor.h) of `width` channels pooling windows of `rate` tokens;
// an overlapping one projects two series.
int64_t kv_compressor(const TransformerConfig& c, int64_t width, int64_t rate, bool overlapping) {
  const auto projected = (overlapping ? 2 : 1) * width;
  return 2 * c.hidden_size * projected + rate * projected + norm(c, width);
}

// DeepSeek-V4's shared-KV attention (layers/shared_kv_attention.h): W, or with the compressor of
// C (and its indexer) or H.
int64_t shared_kv_attention(const TransformerConfig& c, SequenceMixerKind kind) {
  const auto h = c.hidden_size, heads = c.num_attention_heads, d = c.kv_channels, q = c.q_lora_rank;
  const auto groups = c.attention_output_groups, rank = c.attention_output_lora_rank;
  int64_t count = h * q + norm(c, q) + q * heads * d + h * d + norm(c, d) + heads + rank * heads * d + groups * rank * h;
  if (kind == SequenceMixerKind::HeavilyCompressedAttention) count += kv_compressor(c, d, c.hca_compress_rate, false);
  if (kind == SequenceMixerKind::CompressedSparseAttention) {
    const auto n = c.dsa_indexer_n_heads, di = c.dsa_indexer_head_dim;
    count += kv_compressor(c, d, c.csa_compress_rate, true) + kv_compressor(c, di, c.csa_compress_rate, true) +
             q * n * di + h * n;
  }
  return count;
}

// The top-k router and the hash router (moe_hash_routed_layers) hold the same weight; their
// buffers, the expert bias and the hash router's token-id table, are not parameters.
int64_t mixture_of_experts(const TransformerConfig& c) {
  const auto h = c.hidden_size, experts = c.num_moe_experts, ffn = c.moe_ffn_hidden_size;
  int64_t count = experts * h +                                            // router
                  experts * h * (c.gated_linear_unit ? 2 * ffn : ffn) +  // experts' fc1
                  experts * ffn * h;                                     // experts' fc2
  if (c.moe_shared_expert_intermediate_size > 0) count += mlp(c, c.moe_shared_expert_intermediate_size);
  if (c.moe_shared_expert_gate) count += h;
  return count;
}

int64_t sequence_mixer(const TransformerConfig& c, SequenceMixerKind kind) {
  switch (kind) {
    case SequenceMixerKind::Attention: return attention(c);
    case SequenceMixerKind::GatedDeltaNet:
      return c.experimental_attention_variant == "gdn2" ? gated_delta_net2(c) : gated_delta_net(c);
    case SequenceMixerKind::Mamba2: return mamba2(c);
    case SequenceMixerKind::MultiLatentAttention: return latent_attention(c, false);
    case SequenceMixerKind::DeepSeekSparseAttention: return latent_attention(c, true);
    case SequenceMixerKind::SlidingWindowAttention:
    case SequenceMixerKind::CompressedSparseAttention:
    case SequenceMixerKind::HeavilyCompressedAttention: return shared_kv_attention(c, kind);
  }
  return 0;
}

int64_t channel_mixer(const TransformerConfig& c, ChannelMixerKind kind) {
  return kind == ChannelMixerKind::Mlp ? mlp(c, c.ffn_hidden_size) : mixture_of_experts(c);
}

// mHC's residual of one canonical layer: the maps' projection, base and three gating scales.
int64_t hyper_connection(const TransformerConfig& c) {
  if (!c.enable_mhc_connections) return 0;
  const auto n = c.mhc_num_residual_streams, maps = 2 * n + n * n;
  return maps * n * c.hidden_size + maps + 3;
}

}  // namespace

int64_t ParameterCount::layers() const {
  int64_t sum = 0;
  for (const auto& [symbol, count] : by_symbol) sum += count;
  return sum;
}

int64_t ParameterCount::total() const { return embedding + output_layer + final_layernorm + layers() + mtp; }

ParameterCount count_parameters(const TransformerConfig& c, const LayerPattern& pattern) {
  ParameterCount out;
  const auto h = c.hidden_size;
  out.embedding = c.vocab_size * h;
  if (c.position_embedding_type == PositionEmbeddingType::LearnedAbsolute) out.embedding += c.max_position_embeddings * h;
  out.output_layer = c.share_embeddings_and_output_weights ? 0 : c.vocab_size * h;
  out.final_layernorm = norm(c, h);
  if (c.enable_mhc_connections) {
    const auto n = c.mhc_num_residual_streams;
    out.final_layernorm += n * n * h + n + 1;
  }
  const auto per_layer = norm(c, h) + hyper_connection(c);
  auto count_layer = [&](const PatternLayer& layer) {
    return (layer.sequence ? per_layer + sequence_mixer(c, *layer.sequence) : 0) +
           (layer.channel ? per_layer + channel_mixer(c, *layer.channel) : 0);
  };
  for (const auto& layer : pattern.layers) {
    if (layer.sequence) out.by_symbol[symbol(*layer.sequence)] += per_layer + sequence_mixer(c, *layer.sequence);
    if (layer.channel) out.by_symbol[symbol(*layer.channel)] += per_layer + channel_mixer(c, *layer.channel);
  }
  for (const auto& depth : resolve_mtp_depths(c)) {
    out.mtp += 3 * norm(c, h) + linear(2 * h, h, false);  // enorm, hnorm, final_layernorm; eh_proj
    for (const auto& layer : depth) out.mtp += count_layer(layer);
  }
  return out;
}

}  // namespace strata
