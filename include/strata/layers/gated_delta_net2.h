#pragma once
// The Gated DeltaNet-2 sequence mixer (Megatron's GatedDeltaNet2, experimental_attention_variant
// gdn2): Gated DeltaNet with channel-wise gates that decouple erasing from writing.
//   in_proj -> [q k v | z | f | b | w];  q k v -> causal depthwise conv1d -> SiLU;
//   q, k L2-normalised per head, q scaled by 1/sqrt(dk);
//   g = -exp(A_log) softplus(f + dt_bias) per key channel (float32), b = sigmoid(b), w = sigmoid(w);
//   o = gated delta rule 2 (layers/gated_delta_rule2.h);
//   out_proj(weight * rms_norm(o) * SiLU(z))  with the norm taken per value head.
// With more value heads than key heads, each q/k head (and its g, b) serves nv / nk consecutive
// value heads. Parameters (relative to the mixer, Megatron's names): in_proj.weight with rows
// [q (nk dk), k (nk dk), v (nv dv), z (nv dv), f (nk dk), b (nk dk), w (nv dv)], conv1d.weight
// [2 nk dk + nv dv, 1, K] (no bias), dt_bias [nk dk] (one per key channel), A_log [nk] (one per
// key head), out_norm.weight [dv], out_proj.weight [hidden, nv dv]. Shapes come from the config's
// linear_* fields, the chunk length from linear_chunk_size, the norm's epsilon from layernorm_epsilon.
// Unlike Megatron (whose GDN2 raises NotImplementedError under inference), strata decodes with it:
// the conv history and S carry from token to token in a GatedDeltaNetState.
#include <optional>

#include "strata/layers/gated_delta_net.h"

namespace strata {

class GatedDeltaNet2 : public SequenceMixer {
 public:
  // GDN2 takes Gated DeltaNet's submodules (an in_proj and an out_proj slot), as in Megatron.
  GatedDeltaNet2(const LayerArgs& args, const GatedDeltaNetSubmodules& submodules);

  // The builder for a self_attention slot (a hybrid layer's sequence mixer).
  static Builder<slots::SelfAttention> builder(GatedDeltaNetSubmodules submodules);

  // Training / prefill: the whole sequence through the chunked rule, from a zero state (at each
  // packed document's start with ctx.cu_seqlens); with ctx.cache it continues the cached state and
  // advances it, one-token steps through the recurrent form.
  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

  // Decoding: hidden [B, T, hidden] continues the sequences in `state` through the recurrent form
  // and advances the state past the T tokens.
  MixerOutput forward_recurrent(const at::Tensor& hidden, GatedDeltaNetState& state);

  // Zero conv and delta-rule state for `batch` sequences, as before the first token.
  GatedDeltaNetState initial_state(int64_t batch, at::Device device) const;

 private:
  enum class Form { chunked, recurrent };
  // The mixer from `state` (null: from zeros, nothing kept), advancing it when given; cu_seqlens
  // (packed documents) only without a state.
  MixerOutput mix(const at::Tensor& hidden, GatedDeltaNetState* state, Form form,
                  const std::optional<at::Tensor>& cu_seqlens);

  int64_t layer_number_;
  int64_t num_key_heads_, num_value_heads_, key_head_dim_, value_head_dim_;
  int64_t conv_kernel_;
  int64_t chunk_size_;
  std::shared_ptr<LinearModule> in_proj_;
  std::shared_ptr<torch::nn::Conv1dImpl> conv1d_;
  at::Tensor dt_bias_;
  at::Tensor A_log_;
  std::shared_ptr<GatedRmsNorm> out_norm_;
  std::shared_ptr<LinearModule> out_proj_;
};

}  // namespace strata
