#pragma once
// The interfaces that built modules offer, one per protocol. A slot's builder must return a
// module deriving from its slot's interface; Builder<Slot> checks that at compile time.
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <optional>
#include <vector>

#include "strata/core/error.h"
#include "strata/spec/inference_cache.h"

namespace strata {

// (output, bias) as Megatron's linears and mixers return it: with skip_bias_add the bias is
// handed on unapplied so bias-dropout-add can apply it in one pass.
struct MixerOutput {
  at::Tensor output;
  std::optional<at::Tensor> bias;
};
using LinearOutput = MixerOutput;

// Per-forward data every layer may read: rotary tables for the current positions, the encoder
// output for cross attention, the decoding cache, and the auxiliary losses (MoE load balancing,
// multi-token prediction) the model reports.
struct ForwardContext {
  at::Tensor rotary_cos;  // [T, rotary_dim] for positions offset .. offset + T - 1
  at::Tensor rotary_sin;  // [T, rotary_dim]
  InferenceCache* cache = nullptr;  // set while decoding: mixers read and extend their state
  std::optional<at::Tensor> context;  // encoder output [B, S, H] for cross attention
  std::vector<at::Tensor> aux_losses;  // scalars, summed into the training loss
  // The batch's labels ([B, T], labels[t + 1] predicted at t) while training: a model with
  // multi-token prediction then runs its MTP depths, adds their scaled loss to aux_losses and
  // reports each depth's loss here. Without labels (evaluation, generation) MTP does not run.
  std::optional<at::Tensor> labels;
  std::vector<at::Tensor> mtp_losses;
  // Packed documents (kernels/packed_documents.h): a batch of one row holding documents back to
  // back, cu_seqlens [N + 1] their offsets. Gated DeltaNet restarts its conv and state at each
  // document; the other sequence mixers refuse it (refuse_packed_documents) until they do the same.
  std::optional<at::Tensor> cu_seqlens;
  // The token ids [B, T] of the positions this forward runs: set by the model where it embeds
  // them, and by the pipeline schedule on later stages (every rank holds the batch). DeepSeek-V4's
  // hash-routed MoE layers pick experts by token id (layers/hash_router.h); a forward without
  // them cannot run such a layer.
  std::optional<at::Tensor> input_ids;
};

// For sequence mixers that would mix tokens across documents: packed documents are refused.
inline void refuse_packed_documents(const ForwardContext& ctx, const char* mixer) {
  if (ctx.cu_seqlens)
    fail(mixer, ": packed documents (ForwardContext::cu_seqlens) are not supported; only Gated DeltaNet keeps "
                "documents apart so far");
}

class NormModule : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

class LinearModule : public torch::nn::Module {
 public:
  virtual LinearOutput forward(const at::Tensor& x) = 0;
};

// softmax(q k^T) v and its variants. q: [B, T, heads, D], k/v: [B, S, kv_heads, D];
// returns [B, T, heads * Dv].
class CoreAttentionModule : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) = 0;
  // The same with `allowed` [T, S] (bool, true: query t may attend key s) in place of the
  // module's own mask: decoding over a fixed-capacity KV cache, whose slots past the current
  // position must stay unseen. A core attention without it refuses fixed-capacity decoding.
  virtual at::Tensor forward_with_mask(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&) {
    fail("core attention ", name(), ": no forward_with_mask, so it cannot decode over a fixed-capacity cache");
  }
};

// Mixes information along the sequence: attention, Gated DeltaNet, Mamba2, MLA, DSA.
class SequenceMixer : public torch::nn::Module {
 public:
  virtual MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) = 0;
};

// Attends from the decoder sequence to ctx.context (the encoder output).
class CrossAttentionMixer : public torch::nn::Module {
 public:
  virtual MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) = 0;
};

// Mixes information along the hidden dimension of each token: MLP, MoE.
class ChannelMixer : public torch::nn::Module {
 public:
  virtual MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) = 0;
};

// residual + dropout(out + bias).
class BiasDropoutAddModule : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const MixerOutput& out, const at::Tensor& residual) = 0;
  // dropout(out + bias) alone, for a residual policy that adds it itself (hyper-connections mix it
  // into their streams). A module may skip the add of a zero residual here.
  virtual at::Tensor branch(const MixerOutput& out) { return forward(out, at::zeros({}, out.output.options())); }
};

// How the residual stream enters and leaves one half of a layer. The plain residual keeps one
// stream; hyper-connections keep n and mix them. `streams` is whatever the block carries.
class ResidualConnection : public torch::nn::Module {
 public:
  // The sublayer's input (before its norm), collapsed from the streams.
  virtual at::Tensor sublayer_input(const at::Tensor& streams) = 0;
  // The streams after adding the sublayer's output, through bias-dropout-add.
  virtual at::Tensor combine(const at::Tensor& streams, const MixerOutput& out, BiasDropoutAddModule& bda) = 0;
};

}  // namespace strata
