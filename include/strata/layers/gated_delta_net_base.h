#pragma once
// What Gated DeltaNet and Gated DeltaNet-2 share (Megatron's _GDNBase): their submodules, the
// decoding state, the gated RMSNorm, and GatedDeltaNetBase, which holds the parameters under
// their canonical names (in_proj, conv1d, dt_bias, A_log, out_norm, out_proj), runs the causal
// depthwise conv with its decoding history, and dispatches a forward between the chunked form
// (training, prefill, packed documents) and the recurrent one (one-token decode steps). A mixer
// says how its in_proj rows after q k v | z are gated, and mixes (mix()).
#include <functional>
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

// x / ||x|| per head, as HF's, FLA's and Megatron's l2norm: x * rsqrt(sum x^2 + eps), in x's dtype.
inline constexpr double kL2NormalizeEps = 1e-6;
at::Tensor l2_normalize(const at::Tensor& x);

// The gate parameters a mixer adds to the shared layout.
struct GatedDeltaNetGates {
  int64_t in_proj_rows;                       // in_proj rows after q k v | z
  int64_t dt_bias_size, A_log_size;           // dt_bias's and A_log's lengths
  std::function<at::Tensor(int64_t)> dt_bias;  // dt_bias's initial values, of its length
};

class GatedDeltaNetBase : public SequenceMixer {
 public:
  // Training / prefill: the whole sequence through the chunked form. Without ctx.cache it starts
  // from a zero state, or with ctx.cu_seqlens from a zero state (and a zero conv history) at each
  // packed document's start; with it, it continues the cached state and advances it, one-token
  // steps through the recurrent form.
  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

  // Decoding: hidden [B, T, hidden] continues the sequences in `state` through the recurrent form;
  // state (conv inputs and delta-rule state) is advanced past the T tokens.
  MixerOutput forward_recurrent(const at::Tensor& hidden, GatedDeltaNetState& state);

  // Zero conv and delta-rule state for `batch` sequences, as before the first token.
  GatedDeltaNetState initial_state(int64_t batch, at::Device device) const;

 protected:
  // `name` (the mixer's, for errors) and `gates` of a mixer whose config the caller validated
  // (validate_linear_attention_fields). Registers the parameters in Megatron's order, so the
  // random initialisation draws in that order.
  GatedDeltaNetBase(const LayerArgs& args, const GatedDeltaNetSubmodules& sub, const char* name,
                    const GatedDeltaNetGates& gates);

  enum class Form { chunked, recurrent };
  // The mixer from `state` (null: from zeros, nothing kept), advancing it when given; cu_seqlens
  // (packed documents) only without a state.
  virtual MixerOutput mix(const at::Tensor& hidden, GatedDeltaNetState* state, Form form,
                          const std::optional<at::Tensor>& cu_seqlens) = 0;

  // The causal depthwise conv + SiLU over in_proj's q k v rows (`inputs`, [B, T, channels]):
  // each output sees its own and the K - 1 previous inputs; before the first token those are
  // zeros (at each packed document's start with cu_seqlens), while decoding they are `state`'s,
  // which is advanced. Returns [B, T, channels].
  at::Tensor conv_silu(const at::Tensor& inputs, GatedDeltaNetState* state, const std::optional<at::Tensor>& cu_seqlens);

  const char* name_;
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

// The linear_* fields both mixers read: positive, and value heads a multiple of key heads; errors
// name `mixer`.
void validate_linear_attention_fields(const TransformerConfig& c, const char* mixer);

}  // namespace strata
