#pragma once
// The Gated DeltaNet sequence mixer (Qwen3-Next's linear attention; Megatron's GatedDeltaNet):
//   in_proj -> [q k v | z | b | a];  q k v -> causal depthwise conv1d -> SiLU;
//   q, k L2-normalised per head, q scaled by 1/sqrt(dk); beta = sigmoid(b);
//   g = -exp(A_log) softplus(a + dt_bias);  o = gated delta rule(q, k, v, g, beta);
//   out_proj(weight * rms_norm(o) * SiLU(z))  with the norm taken per value head.
// With more value heads than key heads, each q/k head serves nv / nk consecutive value heads.
// Parameters (relative to the mixer; strata's canonical names): in_proj.weight with rows
// [q (nk dk), k (nk dk), v (nv dv), z (nv dv), b (nv), a (nv)] (Megatron's flat order; HF groups
// them per key head, see hf/gated_delta_net_layout.h), conv1d.weight [2 nk dk + nv dv, 1, K]
// (no bias), dt_bias [nv], A_log [nv], out_norm.weight [dv], out_proj.weight [hidden, nv dv].
// Shapes come from the config's linear_* fields, the norm's epsilon from layernorm_epsilon.
#include "strata/layers/gated_delta_net_base.h"

namespace strata {

// One-token decode steps take the fused recurrent step (kernels/gated_delta_rule_step.h), which
// advances the delta-rule state in place where its CUDA kernel runs.
class GatedDeltaNet : public GatedDeltaNetBase {
 public:
  GatedDeltaNet(const LayerArgs& args, const GatedDeltaNetSubmodules& submodules);

  // The builder for a self_attention slot (a hybrid layer's sequence mixer).
  static Builder<slots::SelfAttention> builder(GatedDeltaNetSubmodules submodules);

 private:
  MixerOutput mix(const at::Tensor& hidden, GatedDeltaNetState* state, Form form,
                  const std::optional<at::Tensor>& cu_seqlens) override;
};

}  // namespace strata
