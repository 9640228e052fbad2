#pragma once
// DeepSeek-V3.2: every layer is MLA with DeepSeek sparse attention (its lightning indexer picks
// index_topk keys per query), followed by a dense SwiGLU MLP ("dense" in mlp_layer_types, the
// first first_k_dense_replace layers) or a MoE: sigmoid routing with the aux-loss-free expert
// bias, renormalised top-k weights times routed_scaling_factor, and an always-on shared expert
// of n_shared_experts * moe_intermediate_size.
//
// Each HF layer is one fused strata layer, so HF layer i holds canonical layers 2i (its sparse
// attention) and 2i + 1 (its MLP): "[D-][DE]" for mlp_layer_types (dense, sparse).
//
// DeepSeek rotates interleaved pairs of the position part (x0, x1), (x2, x3), ...; strata rotates
// halves. The tensor map permutes the rows of q_b_proj and kv_a_proj_with_mqa that produce the
// position part (even ones first, then odd ones), which makes the two the same computation.
// The indexer's RoPE is already in halves. A scaled RoPE (YaRN) applies to both, from the same
// tables; YaRN's mscale_all_dim also scales MLA's softmax, as in HF's DeepseekV32Attention.
#include "strata/hf/architecture.h"

namespace strata::hf {

// One bracket per HF layer: "[D-]" for a dense MLP layer, "[DE]" for a MoE layer.
std::string deepseek_v32_layer_pattern(const io::DeepseekV32Config& config);
// Errors name the HF setting strata cannot reproduce (biases, RoPE types other than default,
// linear, yarn and llama3, group-limited routing).
TransformerConfig deepseek_v32_transformer_config(const io::DeepseekV32Config& config);
TensorMap deepseek_v32_tensor_map(const TransformerConfig& config);
// For export: the DeepSeek-V3.2 config of a model whose layers are DSA + (MLP or MoE) pairs, MTP
// depths included. Routing is written ungrouped (n_group = topk_group = 1); a model without MoE
// layers keeps HF's default MoE sizes, which then size nothing.
io::DeepseekV32Config deepseek_v32_hf_config(const TransformerConfig& config);

}  // namespace strata::hf
