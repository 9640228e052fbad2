#pragma once
// The lightning indexer of DeepSeek-V4's compressed sparse attention (HF's DeepseekV4Indexer):
// like DeepSeek-V3.2's (lightning_indexer.h) it scores with a few cheap heads, but it scores the
// compressed entries rather than tokens, from keys of its own overlapping KV compressor:
//   k     = compressor(x)                                   [B, E, D]   (kv_compressor.h)
//   q_h   = RoPE(linear_wq_b(q latent)) per indexer head     [B, T, heads, D]
//   w_h   = linear_weights_proj(x) / sqrt(heads)             [B, T, heads]
//   score(t, e) = sum_h w_h(t) * ReLU(q_h(t) . k(e)) / sqrt(D)
// and each query reads the dsa_indexer_topk best entries among those whose window is complete at
// its position. RoPE is interleaved on the last qk_pos_emb_head_dim channels, with the compressed
// branch's base; the queries rotate at their own positions, the entries at their windows' starts.
//
// As for DeepSeek-V3.2 the language-model loss does not train the indexer (top-k has no gradient;
// DeepSeek trains it with a loss of its own, which strata does not have yet): it runs without
// autograd and its parameters get no gradient.
// Parameters (relative to the indexer): compressor.* (width dsa_indexer_head_dim, rate
// csa_compress_rate, overlapping), linear_wq_b.weight [heads * D, q_lora_rank],
// linear_weights_proj.weight [heads, hidden].
#include "strata/layers/kv_compressor.h"

namespace strata {

struct CompressedIndexerSubmodules {
  KvCompressorSubmodules compressor;
  Builder<slots::ColumnParallelLinear> linear_wq_b;
  Builder<slots::ColumnParallelLinear> linear_weights_proj;
};

class CompressedIndexer : public torch::nn::Module {
 public:
  // Errors name the bad dsa_indexer_* field (validate_shared_kv_attention).
  CompressedIndexer(std::shared_ptr<const TransformerConfig> config, const CompressedIndexerSubmodules& submodules);

  // [B, T, E] bool: the entries each query (position offset + t) reads, of the E the indexer's
  // compressor has made so far (`state` continues a decoded sequence, as for KvCompressor).
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& q_latent, int64_t offset, KvCompressorState* state);

  // The scores [B, T, E] (float32, -inf for entries whose window is not complete) forward ranks.
  at::Tensor scores(const at::Tensor& hidden, const at::Tensor& q_latent, int64_t offset, KvCompressorState* state);

 private:
  int64_t num_heads_, head_dim_, topk_;
  InterleavedRotary rotary_;
  std::shared_ptr<KvCompressor> compressor_;
  std::shared_ptr<LinearModule> linear_wq_b_;
  std::shared_ptr<LinearModule> linear_weights_proj_;
};

template <class B>
CompressedIndexerSubmodules compressed_indexer_submodules(const B& backend) {
  return {.compressor = kv_compressor_submodules(backend),
          .linear_wq_b = backend.column_parallel_linear(),
          .linear_weights_proj = backend.column_parallel_linear()};
}

}  // namespace strata
