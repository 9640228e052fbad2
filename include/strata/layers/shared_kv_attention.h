#pragma once
// DeepSeek-V4's attention (HF's DeepseekV4Attention), pattern symbols W, C and H (strata's
// extension, docs/layer_patterns.md):
//   q latent = q_layernorm(linear_q_down_proj(x))                        [B, T, q_lora_rank]
//   q        = RoPE(rms_normalise(linear_q_up_proj(q latent) per head))   [B, T, heads, D], no weight
//   kv       = RoPE(kv_layernorm(linear_kv_proj(x)))                      [B, T, D]: ONE head, both key
//                                                                         and value for every query head
//   keys     = the sliding_window_size newest tokens' kv (the query's own included), and on
//              W: nothing more;
//              H: every complete entry of a KV compressor of hca_compress_rate tokens;
//              C: the dsa_indexer_topk complete entries a compressed indexer picks, of an
//                 overlapping KV compressor of csa_compress_rate tokens (kv_compressor.h,
//                 compressed_indexer.h)
//   o_h      = softmax over [q_h . keys / sqrt(D), sink_h] without the sink's share, times keys
//   out      = linear_proj(linear_grouped_proj(RoPE^-1(o) per group of heads))
// RoPE is interleaved on the last qk_pos_emb_head_dim channels (interleaved_rotary.h), with
// rotary_base on W layers and compress_rotary_base / compress_rotary_scaling on C and H layers,
// whose compressors and indexer rotate so too. Values carry the keys' rotation (they are the
// keys), so each head's output is rotated back by its query's position: what a key contributes
// then depends only on its distance. The sink (attention_sinks, one logit per head) lets a head
// attend to nothing. linear_grouped_proj maps each of attention_output_groups groups of heads to
// attention_output_lora_rank channels (block_diagonal_linear.h).
//
// Parameters (relative to the mixer): linear_q_down_proj.weight [q_lora_rank, H],
// q_layernorm.weight, linear_q_up_proj.weight [heads * D, q_lora_rank], linear_kv_proj.weight
// [D, H], kv_layernorm.weight [D], attention_sinks [heads], linear_grouped_proj.weight
// [groups * rank, heads * D / groups], linear_proj.weight [H, groups * rank], and compressor.*
// (C, H) and indexer.* (C).
#include "strata/layers/block_diagonal_linear.h"
#include "strata/layers/compressed_indexer.h"
#include "strata/layers/kv_compressor.h"

namespace strata {

// Which compressed branch the attention has beside its sliding window.
enum class CompressedBranch { None, Sparse, Heavy };  // W, C, H

// What decoding keeps between steps: the newest sliding_window_size - 1 keys, and the states of the
// compressor and the indexer.
struct SharedKvAttentionState : MixerState {
  at::Tensor window;  // [B, <= sliding_window_size - 1, D]
  KvCompressorState compressor, indexer;
};

struct SharedKvAttentionSubmodules {
  CompressedBranch branch = CompressedBranch::None;
  Builder<slots::ColumnParallelLinear> linear_q_down_proj;
  Builder<slots::Norm> q_layernorm;
  Builder<slots::ColumnParallelLinear> linear_q_up_proj;
  Builder<slots::ColumnParallelLinear> linear_kv_proj;
  Builder<slots::Norm> kv_layernorm;
  Builder<slots::RowParallelLinear> linear_proj;
  KvCompressorSubmodules compressor;      // C and H
  CompressedIndexerSubmodules indexer;    // C
};

class SharedKvAttention : public SequenceMixer {
 public:
  // Errors name the bad field (validate_shared_kv_attention), and attention_dropout when it is not 0.
  SharedKvAttention(const LayerArgs& args, const SharedKvAttentionSubmodules& submodules);

  // The builder for a self_attention slot.
  static Builder<slots::SelfAttention> builder(SharedKvAttentionSubmodules submodules);

  // With ctx.cache (a growing one), continues the cached positions and extends this layer's state.
  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

 private:
  int64_t layer_number_;
  int64_t num_heads_, head_dim_, window_, groups_;
  double norm_eps_;
  CompressedBranch branch_;
  InterleavedRotary rotary_;
  std::shared_ptr<LinearModule> linear_q_down_proj_;
  std::shared_ptr<NormModule> q_layernorm_;
  std::shared_ptr<LinearModule> linear_q_up_proj_;
  std::shared_ptr<LinearModule> linear_kv_proj_;
  std::shared_ptr<NormModule> kv_layernorm_;
  at::Tensor attention_sinks_;
  std::shared_ptr<KvCompressor> compressor_;      // null on W
  std::shared_ptr<CompressedIndexer> indexer_;    // C only
  std::shared_ptr<BlockDiagonalLinear> linear_grouped_proj_;
  std::shared_ptr<LinearModule> linear_proj_;
};

// softmax over [q k^T * scale, sink] per head, the sink's share dropped, times k: q [B, T, heads, D],
// keys [B, S, D] (one head, also the values), allowed [B, T, S] bool, sinks [heads]. Returns
// [B, T, heads, D]; the softmax runs in float32.
at::Tensor shared_kv_sink_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& allowed,
                                    const at::Tensor& sinks, double scale);

// [T, S] bool: whether query position offset + t sees key position key_offset + s in a window of
// `window` positions (itself and the window - 1 before it).
at::Tensor sliding_window_visible(int64_t queries, int64_t offset, int64_t keys, int64_t key_offset, int64_t window,
                                  at::Device device);

// The W, C or H attention from a backend.
template <class B>
SharedKvAttentionSubmodules shared_kv_attention_submodules(const B& backend, CompressedBranch branch) {
  static_assert(check_backend<B>());
  return {.branch = branch,
          .linear_q_down_proj = backend.column_parallel_linear(),
          .q_layernorm = configured_norm(backend),
          .linear_q_up_proj = backend.column_parallel_linear(),
          .linear_kv_proj = backend.column_parallel_linear(),
          .kv_layernorm = configured_norm(backend),
          .linear_proj = backend.row_parallel_linear(),
          .compressor = kv_compressor_submodules(backend),
          .indexer = compressed_indexer_submodules(backend)};
}

}  // namespace strata
