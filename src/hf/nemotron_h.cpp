#include "strata/hf/nemotron_h.h"

#include <algorithm>

#include "strata/core/error.h"
#include "strata/hf/common_maps.h"
#include "strata/model/build_model.h"
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
  // Attention: GQA without biases, q/k norms or positional encoding (no dimension rotates).
  c.num_attention_heads = hf.num_attention_heads;
  c.num_query_groups = hf.num_key_value_heads;
  c.kv_channels = hf.head_dim;
  c.rotary_percent = 0.0;
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

HfModel build_nemotron_h(const io::NemotronHConfig& hf) {
  auto config = std::make_shared<const TransformerConfig>(nemotron_h_transformer_config(hf));
  auto model = build_language_model(config);
  return {"nemotron_h", config, model, nemotron_h_tensor_map(*config)};
}

}  // namespace strata::hf
