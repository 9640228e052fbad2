#pragma once
// DeepSeek-V4's KV compressor (HF's DeepseekV4HCACompressor / DeepseekV4CSACompressor and its
// indexer's): every `rate` tokens become one compressed entry, a learned softmax pooling of their
// projected keys/values.
//   kv, gate = linear_kv_proj(x), linear_gate_proj(x)          [B, T, k * width]
//   window w's slots: its tokens' kv and gate + position_bias  (position_bias [rate, k * width])
//   entry_w = RoPE(kv_layernorm(sum over slots of softmax(gate over slots) * kv))   [width]
// Plain (k = 1, heavily compressed attention): the slots are window w's rate tokens. Overlapping
// (k = 2, compressed sparse attention and its indexer): each token projects two series [a | b];
// window w pools the b series of its own tokens with the a series of window w - 1's tokens, 2 *
// rate slots (window 0's a slots are empty: zero kv, -inf gate), so entries overlap by a window.
// RoPE (interleaved, the last rotary_dim channels) puts entry w at the position of its window's
// first token, w * rate. Only whole windows make entries: query position p may read entry w once
// its window is complete, (w + 1) * rate <= p + 1 (compressed_entry_visible).
//
// Parameters: linear_kv_proj.weight, linear_gate_proj.weight [k * width, hidden],
// position_bias [rate, k * width], kv_layernorm.weight [width].
#include "strata/layers/interleaved_rotary.h"
#include "strata/spec/backend.h"

namespace strata {

// What decoding keeps between calls: the tokens of the window not yet complete, the a series of
// the last complete window (overlapping compressors) and every entry made so far.
struct KvCompressorState {
  at::Tensor pending_kv, pending_gate;    // [B, < rate, k * width]
  at::Tensor previous_kv, previous_gate;  // [B, 1, rate, width]
  at::Tensor entries;                     // [B, E, width]
  int64_t num_entries() const { return entries.defined() ? entries.size(1) : 0; }
};

struct KvCompressorSubmodules {
  Builder<slots::ColumnParallelLinear> linear_kv_proj;
  Builder<slots::ColumnParallelLinear> linear_gate_proj;
  Builder<slots::Norm> kv_layernorm;
};

struct KvCompressorShape {
  int64_t width = 0;   // channels of one entry
  int64_t rate = 0;    // tokens per entry
  bool overlapping = false;
};

class KvCompressor : public torch::nn::Module {
 public:
  // Rotates with config.compress_rotary_base and compress_rotary_scaling over the last
  // config.qk_pos_emb_head_dim channels. Errors name a non-positive width or rate.
  KvCompressor(std::shared_ptr<const TransformerConfig> config, const KvCompressorShape& shape,
               const KvCompressorSubmodules& submodules);

  // The entries [B, E, width] of hidden [B, T, H]: without `state` those of its whole windows (a
  // sequence from position 0); with it, the tokens continue the ones `state` has seen, and the
  // result is every entry so far (the state keeps them and the incomplete window).
  at::Tensor forward(const at::Tensor& hidden, KvCompressorState* state = nullptr);

  int64_t rate() const { return shape_.rate; }

 private:
  KvCompressorShape shape_;
  InterleavedRotary rotary_;
  std::shared_ptr<LinearModule> linear_kv_proj_;
  std::shared_ptr<LinearModule> linear_gate_proj_;
  at::Tensor position_bias_;
  std::shared_ptr<NormModule> kv_layernorm_;
};

// [T, E] bool: whether query position offset + t may read compressed entry e of windows of `rate`.
at::Tensor compressed_entry_visible(int64_t queries, int64_t offset, int64_t entries, int64_t rate, at::Device device);

template <class B>
KvCompressorSubmodules kv_compressor_submodules(const B& backend) {
  static_assert(check_backend<B>());
  return {.linear_kv_proj = backend.column_parallel_linear(),
          .linear_gate_proj = backend.column_parallel_linear(),
          .kv_layernorm = configured_norm(backend)};
}

}  // namespace strata
