#pragma once
// The Mamba2 sequence mixer (Megatron's MambaMixer, HF's NemotronHMamba2Mixer):
//   in_proj -> [z | x B C | dt];  x B C -> causal depthwise conv1d -> SiLU;
//   y = SSD(x, softplus(dt + dt_bias), A = -exp(A_log), B, C) + D x;
//   out_proj(norm(y * SiLU(z)))  with the RMSNorm taken within each of n_groups channel groups.
// Parameter names (relative to the mixer) are the HF / Megatron ones: in_proj.weight,
// conv1d.weight [channels, 1, K], conv1d.bias, dt_bias [H], A_log [H], D [H], norm.weight,
// out_proj.weight. Shapes and numerics come from the config's mamba_* fields, the norm's epsilon
// from layernorm_epsilon.
#include "strata/layers/mamba2_slots.h"
#include "strata/layers/ssd.h"
#include "strata/spec/backend.h"

namespace torch::nn {
class Conv1dImpl;
}

namespace strata {

struct Mamba2Submodules {
  Builder<slots::MambaInProj> in_proj;
  Builder<slots::MambaOutProj> out_proj;
};

template <class B>
Mamba2Submodules mamba2_submodules(const B& backend) {
  static_assert(check_backend<B>());
  return {.in_proj = backend.column_parallel_linear(), .out_proj = backend.row_parallel_linear()};
}

// What decoding carries from one token to the next. Default-constructed (both undefined) it is
// the state before the first token, so InferenceCache can create it empty.
struct Mamba2State : MixerState {
  at::Tensor conv;  // [B, conv channels, K - 1]: the conv's most recent inputs, oldest first
  at::Tensor ssm;   // [B, H, P, N] float32
};

// weight * rms_norm(x * SiLU(gate)), the RMS taken within each of `groups` equal channel groups
// so the statistics do not cross tensor-parallel shards of whole groups. The gate is applied
// before normalising (HF's Zamba2RMSNormGated, Megatron's norm_before_gate=False).
class GroupedGatedRmsNorm : public torch::nn::Module {
 public:
  GroupedGatedRmsNorm(int64_t size, int64_t groups, double eps);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& gate);

 private:
  at::Tensor weight_;
  int64_t groups_;
  double eps_;
};

class Mamba2Mixer : public SequenceMixer {
 public:
  Mamba2Mixer(const LayerArgs& args, const Mamba2Submodules& submodules);

  // The builder for a self_attention slot (a hybrid layer's sequence mixer).
  static Builder<slots::SelfAttention> builder(Mamba2Submodules submodules);

  // Training / prefill: the whole sequence through the chunked SSD. Without ctx.cache it starts
  // from a zero state; with it, it continues the cached state and advances it (one-token decode
  // steps then take the recurrent form).
  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

  // Decoding: hidden [B, T, hidden] continues the sequences in `state` through the recurrent
  // form; state is advanced past the T tokens.
  MixerOutput forward_recurrent(const at::Tensor& hidden, Mamba2State& state);

  // Zero conv and SSM state for `batch` sequences, as before the first token.
  Mamba2State initial_state(int64_t batch, at::Device device) const;

 private:
  enum class Form { chunked, recurrent };
  // The mixer from `state` (null: from zeros, nothing kept), advancing it when given.
  MixerOutput mix(const at::Tensor& hidden, Mamba2State* state, Form form);
  // softplus(dt_input + dt_bias) clamped to the limits, in float32.
  at::Tensor step_sizes(const at::Tensor& dt_input) const;

  int64_t layer_number_;
  int64_t num_heads_, head_dim_, state_dim_, num_groups_;
  int64_t conv_kernel_;
  int64_t chunk_size_;
  double time_step_limit_min_, time_step_limit_max_;
  std::shared_ptr<LinearModule> in_proj_;
  std::shared_ptr<torch::nn::Conv1dImpl> conv1d_;
  at::Tensor dt_bias_;
  at::Tensor A_log_;
  at::Tensor D_;
  std::shared_ptr<GroupedGatedRmsNorm> norm_;
  std::shared_ptr<LinearModule> out_proj_;
};

}  // namespace strata
