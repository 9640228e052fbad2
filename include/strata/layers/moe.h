#pragma once
// The mixture-of-experts channel mixer (Megatron's MoELayer, HF's Qwen3NextSparseMoeBlock): a
// router sends each token to k of E experts and sums their outputs weighted by the routing
// weights; an optional shared expert (a plain Mlp) sees every token, optionally scaled per token
// by a sigmoid gate (Qwen).
//
// Parameters, relative to the mixer:
//   router.weight [E, H], router.expert_bias [E] (buffer, with moe_router_enable_expert_bias)
//   router.tid2eid [vocab_size, k] (int64 buffer) in place of expert_bias where the layer is
//     hash-routed (moe_hash_routed_layers; layers/hash_router.h)
//   experts.linear_fc1.weight [E, 2F, H], experts.linear_fc2.weight [E, H, F]   (see moe_experts.h)
//   shared_experts.linear_fc1.weight, shared_experts.linear_fc2.weight          (the shared Mlp)
//   shared_experts_gate.weight [1, H]                                           (moe_shared_expert_gate)
#include "strata/layers/hash_router.h"
#include "strata/layers/mlp.h"
#include "strata/layers/moe_experts.h"
#include "strata/layers/moe_router.h"
#include "strata/spec/backend.h"

namespace strata {

struct MoESubmodules {
  std::optional<Builder<slots::Mlp>> shared_experts;  // absent: no shared expert
};

// sigmoid(x w^T), [..., 1]: how much of the shared expert's output each token takes.
class SharedExpertGate : public torch::nn::Module {
 public:
  SharedExpertGate(int64_t hidden_size, double init_std);
  at::Tensor forward(const at::Tensor& x);

 private:
  at::Tensor weight_;
};

class MoE : public ChannelMixer {
 public:
  // Errors name the bad moe_* field (see TopKRouter and GroupedExperts), and
  // moe_shared_expert_gate when it is set without a shared expert. A main-decoder layer whose
  // canonical index (args.layer_number - 1) is in moe_hash_routed_layers routes with a
  // HashRouter; MTP layers (args.is_mtp_layer) never do.
  MoE(const LayerArgs& args, const MoESubmodules& submodules);

  // The builder for an mlp slot.
  static Builder<slots::Mlp> builder(MoESubmodules submodules);

  // hidden [..., H]. In training with moe_aux_loss_coeff > 0, appends this layer's
  // load-balancing loss to ctx.aux_losses (the caller adds them to the training loss); a
  // hash-routed layer has none, as in HF (its experts are fixed per token: no loss moves them).
  // A hash-routed layer reads ctx.input_ids ([B, T], this rank's share of T under sequence
  // parallelism), and refuses a forward without them.
  MixerOutput forward(const at::Tensor& hidden, ForwardContext& ctx) override;

  bool hash_routed() const { return hash_router_ != nullptr; }

 private:
  // The token ids of hidden's positions, flattened as its tokens are.
  at::Tensor token_ids(const at::Tensor& hidden, const ForwardContext& ctx) const;

  int64_t layer_number_;
  int64_t topk_;
  double aux_loss_coeff_;
  ProcessGroups pg_;
  std::shared_ptr<TopKRouter> router_;       // null where the layer is hash-routed
  std::shared_ptr<HashRouter> hash_router_;  // null elsewhere
  std::shared_ptr<GroupedExperts> experts_;
  std::shared_ptr<ChannelMixer> shared_experts_;         // null: no shared expert
  std::shared_ptr<SharedExpertGate> shared_experts_gate_;  // null: ungated
};

// The MoE's submodules from a backend: a shared expert when moe_shared_expert_intermediate_size
// > 0, an Mlp of that hidden size (the adapter passes it as LayerArgs.ffn_hidden_size).
template <class B>
MoESubmodules moe_submodules(const B& backend, const TransformerConfig& config) {
  static_assert(check_backend<B>());
  if (config.moe_shared_expert_intermediate_size <= 0) return {};
  auto mlp = Mlp::as_mlp_submodule({.linear_fc1 = backend.column_parallel_linear(),
                                    .linear_fc2 = backend.row_parallel_linear()});
  return {.shared_experts = [mlp = std::move(mlp)](const LayerArgs& args) {
    LayerArgs shared = args;
    shared.ffn_hidden_size = args.config->moe_shared_expert_intermediate_size;
    return mlp(shared);
  }};
}

}  // namespace strata
