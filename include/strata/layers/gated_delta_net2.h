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
#include "strata/layers/gated_delta_net_base.h"

namespace strata {

class GatedDeltaNet2 : public GatedDeltaNetBase {
 public:
  // GDN2 takes Gated DeltaNet's submodules (an in_proj and an out_proj slot), as in Megatron.
  GatedDeltaNet2(const LayerArgs& args, const GatedDeltaNetSubmodules& submodules);

  // The builder for a self_attention slot (a hybrid layer's sequence mixer).
  static Builder<slots::SelfAttention> builder(GatedDeltaNetSubmodules submodules);

 private:
  MixerOutput mix(const at::Tensor& hidden, GatedDeltaNetState* state, Form form,
                  const std::optional<at::Tensor>& cu_seqlens) override;
};

}  // namespace strata
