#pragma once
// DeepSeek-V4: every layer is shared-KV attention with a sliding window, plain ("sliding_attention",
// strata's W), with a compressed branch picked by an indexer ("compressed_sparse_attention", C) or
// with a heavily compressed one ("heavily_compressed_attention", H), followed by a MoE
// (sqrtsoftplus routing with the aux-loss-free expert bias, renormalised top-k weights times
// routed_scaling_factor, SwiGLU clamped at swiglu_limit, an always-on shared expert; the
// mlp_layer_types "hash_moe" layers take their experts from a token-id table, tid2eid, and have
// no expert bias: moe_hash_routed_layers, layers/hash_router.h). mHC wraps
// both halves of every layer (attn_hc, ffn_hc) and hc_head contracts the streams before the final
// norm. Each HF layer is one fused strata layer: "[WE]", "[CE]" or "[HE]".
//
// HF keeps DeepSeek's original tensor names on disk (layers.N.attn.wq_a, ffn.experts.E.w1, ...) and
// renames them on load (self_attn.q_a_proj, mlp.experts.gate_up_proj, ...): the tensor map reads
// and writes the first, and maps gradients to the second. RoPE is DeepSeek's interleaved layout
// natively (layers/interleaved_rotary.h), so no rows are permuted.
#include "strata/hf/architecture.h"

namespace strata::hf {

// One bracket per HF layer ("[WE]", "[CE]", "[HE]" from layer_types), hash-routed or not.
std::string deepseek_v4_layer_pattern(const io::DeepseekV4Config& config);
// The canonical indices of the "hash_moe" layers' MoE (HF layer i's is 2i + 1), for
// TransformerConfig::moe_hash_routed_layers; errors name an mlp_layer_types entry that is neither
// "moe" nor "hash_moe".
std::vector<int64_t> deepseek_v4_hash_routed_layers(const io::DeepseekV4Config& config);
// Errors name the HF setting strata cannot reproduce (biases, several KV heads).
TransformerConfig deepseek_v4_transformer_config(const io::DeepseekV4Config& config);
TensorMap deepseek_v4_tensor_map(const TransformerConfig& config);

}  // namespace strata::hf
