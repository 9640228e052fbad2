#include "strata/hf/nemotron_h.h"

#include <algorithm>

#include "strata/core/error.h"
#include "strata/hf/common_maps.h"
#include "strata/hf/layer_schedule.h"
#include "strata/model/layer_allocation.h"

namespace strata::hf {

namespace {

// HF's ACT2FN names for the MLP activation; relu2 is squared ReLU.
Activation mlp_activation(const std::string& hf_name) {
  return parse_activation(hf_name == "relu2" ? "squared_relu" : hf_name, "nemotron_h config mlp_hidden_act");
}

// HF 5 loads the checkpoint's backbone.* tensors into its module `model`, so its gradients are
// named model.*: each rule keeps its checkpoint names and gets the module names at run time.
TensorMap with_runtime_names(const TensorMap& checkpoint_map) {
  const std::string checkpoint_prefix = "backbone.", module_prefix = "model.";
  TensorMap out;
  for (auto rule : checkpoint_map.rules()) {
    for (const auto& name : rule.hf_names)
      rule.runtime_names.push_back(name.rfind(checkpoint_prefix, 0) == 0
                                       ? module_prefix + name.substr(checkpoint_prefix.size())
                                       : name);
    rule.to_runtime = rule.to_hf;
    out.add(std::move(rule));
  }
  return out;
}

void map_mamba2(TensorMap& map, const TransformerConfig& c, const std::string& st, const std::string& hf) {
  for (const char* tensor : {"in_proj.weight", "conv1d.weight", "dt_bias", "A_log", "D", "norm.weight",
                             "out_proj.weight"})
    map.rename(st + tensor, hf + tensor);
  if (c.mamba_conv_bias) map.rename(st + "conv1d.bias", hf + "conv1d.bias");
  if (c.mamba_proj_bias) {
    map.rename(st + "in_proj.bias", hf + "in_proj.bias");
    map.rename(st + "out_proj.bias", hf + "out_proj.bias");
  }
}

void map_attention(TensorMap& map, const TransformerConfig& c, const std::string& st, const std::string& hf) {
  map.grouped_qkv(st + "linear_qkv.weight", hf + "q_proj.weight", hf + "k_proj.weight", hf + "v_proj.weight",
                  c.num_query_groups, c.num_attention_heads / c.num_query_groups, c.kv_channels);
  map.rename(st + "linear_proj.weight", hf + "o_proj.weight");
}

}  // namespace

std::string nemotron_h_layer_pattern(const io::NemotronHConfig& hf) {
  std::string pattern;
  for (size_t i = 0; i < hf.layers_block_type.size(); ++i) {
    const auto& type = hf.layers_block_type[i];
    if (type == "linear_attention") pattern += 'M';
    else if (type == "full_attention") pattern += '*';
    else if (type == "mlp") pattern += '-';
    else
      fail("nemotron_h config: layers_block_type[", i, "] is \"", type,
           "\", which strata cannot build yet (supported: linear_attention, full_attention, mlp)");
  }
  return pattern;
}

TransformerConfig nemotron_h_transformer_config(const io::NemotronHConfig& hf) {
  if (hf.attention_bias) fail("nemotron_h config: attention_bias = true is not supported; expected false");
  if (hf.mlp_bias) fail("nemotron_h config: mlp_bias = true is not supported; expected false");
  if (hf.mamba_hidden_act != "silu")
    fail("nemotron_h config: mamba_hidden_act = \"", hf.mamba_hidden_act, "\" is not supported; expected \"silu\"");
  TransformerConfig c;
  c.hybrid_layer_pattern = nemotron_h_layer_pattern(hf);
  c.num_layers = hf.num_hidden_layers();
  c.hidden_size = hf.hidden_size;
  c.vocab_size = hf.vocab_size;
  c.normalization = Normalization::RMSNorm;
  c.layernorm_epsilon = hf.layer_norm_epsilon;
  c.share_embeddings_and_output_weights = hf.tie_word_embeddings;
  // What HF's model does where Megatron's defaults differ: no biases, no dropout, a float32
  // residual under autocast (docs/megatron.md).
  c.add_bias_linear = false;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.fp32_residual_connection = true;
  // Attention: GQA without biases, q/k norms or positional encoding.
  c.num_attention_heads = hf.num_attention_heads;
  c.num_query_groups = hf.num_key_value_heads;
  c.kv_channels = hf.head_dim;
  c.position_embedding_type = PositionEmbeddingType::None;
  // MLP: up_proj -> activation -> down_proj, no gate.
  c.ffn_hidden_size = hf.intermediate_size;
  c.gated_linear_unit = false;
  c.activation_func = mlp_activation(hf.mlp_hidden_act);
  // Mamba2.
  c.mamba_num_heads = hf.mamba_num_heads;
  c.mamba_head_dim = hf.mamba_head_dim;
  c.mamba_state_dim = hf.ssm_state_size;
  c.mamba_num_groups = hf.n_groups;
  c.mamba_chunk_size = hf.chunk_size;
  c.mamba_conv_kernel_dim = hf.conv_kernel;
  c.mamba_conv_bias = hf.use_conv_bias;
  c.mamba_proj_bias = hf.use_bias;  // HF's mixer takes its in_proj / out_proj bias from use_bias
  c.mamba_time_step_min = hf.time_step_min;
  c.mamba_time_step_max = hf.time_step_max;
  c.mamba_time_step_floor = hf.time_step_floor;
  // HF's PyTorch path (CPU training and prefill, and every decode step) clamps dt from below at
  // time_step_min, not at time_step_limit's lower end as its CUDA kernels and Megatron do. The
  // two differ only where dt falls below time_step_min, and there the gradients differ
  // (time_step_min clamps them to zero); strata follows the PyTorch path, the reference.
  c.mamba_time_step_limit_min = std::max(hf.time_step_limit.first, hf.time_step_min);
  c.mamba_time_step_limit_max = hf.time_step_limit.second;
  validate(c);
  return c;
}

io::NemotronHConfig nemotron_h_hf_config(const TransformerConfig& c) {
  io::NemotronHConfig hf;
  for (const auto& layer : resolve_layer_pattern(c).layers) {
    if (layer.sequence) {
      if (*layer.sequence != SequenceMixerKind::Mamba2 && *layer.sequence != SequenceMixerKind::Attention)
        fail("nemotron_h: canonical layer ", layer.sequence_canonical(), " is ", name(*layer.sequence),
             "; Nemotron-H layers are Mamba2, attention or MLP");
      hf.layers_block_type.push_back(*layer.sequence == SequenceMixerKind::Mamba2 ? "linear_attention"
                                                                                  : "full_attention");
    }
    if (layer.channel) {
      if (*layer.channel != ChannelMixerKind::Mlp)
        fail("nemotron_h: canonical layer ", layer.channel_canonical(), " is ", name(*layer.channel),
             "; Nemotron-H layers are Mamba2, attention or MLP (strata builds no Nemotron-H MoE)");
      hf.layers_block_type.push_back("mlp");
    }
  }
  hf.vocab_size = c.vocab_size;
  hf.hidden_size = c.hidden_size;
  hf.layer_norm_epsilon = c.layernorm_epsilon;
  hf.tie_word_embeddings = c.share_embeddings_and_output_weights;
  hf.num_attention_heads = c.num_attention_heads;
  hf.num_key_value_heads = c.num_query_groups;
  hf.head_dim = c.kv_channels;
  hf.attention_bias = false;
  hf.mamba_num_heads = c.mamba_heads();
  hf.mamba_head_dim = c.mamba_head_dim;
  hf.n_groups = c.mamba_num_groups;
  hf.ssm_state_size = c.mamba_state_dim;
  hf.conv_kernel = c.mamba_conv_kernel_dim;
  hf.chunk_size = c.mamba_chunk_size;
  const auto inner = hf.mamba_num_heads * hf.mamba_head_dim;
  hf.expand = inner % c.hidden_size == 0 ? inner / c.hidden_size : 2;  // informational: HF sizes by the heads
  hf.mamba_hidden_act = "silu";
  hf.use_conv_bias = c.mamba_conv_bias;
  hf.mamba_proj_bias = false;
  hf.use_bias = c.mamba_proj_bias;
  hf.time_step_min = c.mamba_time_step_min;
  hf.time_step_max = c.mamba_time_step_max;
  hf.time_step_floor = c.mamba_time_step_floor;
  const auto lower = c.mamba_time_step_limit_min <= c.mamba_time_step_min ? 0.0 : c.mamba_time_step_limit_min;
  hf.time_step_limit = {lower, c.mamba_time_step_limit_max};
  hf.intermediate_size = c.ffn_hidden_size;
  hf.mlp_hidden_act = hf_activation_name(c.activation_func);
  hf.mlp_bias = false;
  hf.n_routed_experts = 8;
  hf.n_shared_experts = 1;
  hf.num_experts_per_tok = 2;
  hf.moe_intermediate_size = 7688;
  hf.moe_shared_expert_intermediate_size = 7688;
  hf.n_group = 1;
  hf.topk_group = 1;
  hf.norm_topk_prob = true;
  hf.routed_scaling_factor = 1.0;
  return hf;
}

TensorMap nemotron_h_tensor_map(const TransformerConfig& c) {
  TensorMap map;
  map.rename("embedding.word_embeddings.weight", "backbone.embeddings.weight");
  for (const auto& layer : resolve_layer_pattern(c).layers) {
    if (layer.sequence) {
      const auto i = layer.sequence_canonical();
      const auto st = cat("decoder.layers.", i, "."), hf = cat("backbone.layers.", i, ".");
      map.rename(st + "input_layernorm.weight", hf + "norm.weight");
      switch (*layer.sequence) {
        case SequenceMixerKind::Mamba2: map_mamba2(map, c, st + "self_attention.", hf + "mixer."); break;
        case SequenceMixerKind::Attention: map_attention(map, c, st + "self_attention.", hf + "mixer."); break;
        default: fail("nemotron_h tensor map: layer ", i, " is ", name(*layer.sequence), ", which Nemotron-H has not");
      }
    }
    if (layer.channel) {
      const auto i = layer.channel_canonical();
      if (*layer.channel != ChannelMixerKind::Mlp)
        fail("nemotron_h tensor map: layer ", i, " is ", name(*layer.channel), ", which strata cannot map yet");
      const auto st = cat("decoder.layers.", i, "."), hf = cat("backbone.layers.", i, ".");
      map.rename(st + "pre_mlp_layernorm.weight", hf + "norm.weight");
      map.rename(st + "mlp.linear_fc1.weight", hf + "mixer.up_proj.weight");
      map.rename(st + "mlp.linear_fc2.weight", hf + "mixer.down_proj.weight");
    }
  }
  add_final_norm_and_output(map, c, "backbone.norm_f.weight");
  return with_runtime_names(map);
}

}  // namespace strata::hf
