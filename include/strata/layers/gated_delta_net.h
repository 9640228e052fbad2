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
#include <optional>

#include "strata/layers/gated_delta_net_slots.h"
#include "strata/spec/backend.h"

namespace torch::nn {
class Conv1dImpl;
}

namespace strata {

struct GatedDeltaNetSubmodules {
  Builder<slots::GdnInProj> in_proj;
  Builder<slots::GdnOutProj> out_proj;
};

template <class B>
GatedDeltaNetSubmodules gated_delta_net_submodules(const B& backend) {
  static_assert(check_backend<B>());
  return {.in_proj = backend.column_parallel_linear(), .out_proj = backend.row_parallel_linear()};
}

// What decoding carries from one token to the next. Default-constructed (both undefined) it is
// the state before the first token, so InferenceCache can create it empty.
struct GatedDeltaNetState : MixerState {
  at::Tensor conv;       // [B, conv channels, K - 1]: the conv's most recent inputs, oldest first
  at::Tensor recurrent;  // [B, nv, dk, dv] float32: the delta rule's S
};

// weight * rms_norm(x) * SiLU(gate) over the last dimension: normalise first, then gate (HF's
// Qwen3NextRMSNormGated, unlike Mamba2's gate-then-normalise). The weight multiplies directly
// (initialised to ones, not zero-centred like Qwen3-Next's other norms).
class GatedRmsNorm : public torch::nn::Module {
 public:
  GatedRmsNorm(int64_t size, double eps);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& gate);

 private:
  at::Tensor weight_;
  double eps_;
};

class GatedDeltaNet : public SequenceMixer {
 public:
  GatedDeltaNet(const LayerArgs& args, const GatedDeltaNetSubmodules& submodules);

  // The builder for a self_attention slot (a hybrid layer's sequence mixer).
  static Builder<slots::SelfAttention> builder(GatedDeltaNetSubmodules submodules);

  // Training / prefill: the whole sequence through the chunked delta rule. Without ctx.cache it
  // starts from a zero state, or with ctx.cu_seqlens from a zero state (and a zero conv history)
  // at each packed document's start; with it, it continues the cached state and advances it
  // (one-token decode steps then take the fused recurrent step, kernels/gated_delta_rule_step.h).
  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

  // Decoding: hidden [B, T, hidden] continues the sequences in `state` through the recurrent
  // form (the fused step for T = 1); state (conv inputs and delta-rule state) is advanced past the
  // T tokens, the delta-rule state in place where the step's CUDA kernel runs.
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
