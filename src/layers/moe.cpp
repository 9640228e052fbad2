#include "strata/layers/moe.h"

#include <torch/autograd.h>

#include <algorithm>

#include "strata/core/error.h"
#include "strata/parallel/mappings.h"

namespace strata {

SharedExpertGate::SharedExpertGate(int64_t hidden_size, double init_std) {
  weight_ = register_parameter("weight", at::randn({1, hidden_size}) * init_std);
}

at::Tensor SharedExpertGate::forward(const at::Tensor& x) { return at::sigmoid(at::linear(x, weight_)); }

MoE::MoE(const LayerArgs& args, const MoESubmodules& sub)
    : layer_number_(args.layer_number),
      topk_(args.config->moe_router_topk),
      aux_loss_coeff_(args.config->moe_aux_loss_coeff),
      pg_(args.pg) {
  const auto& c = *args.config;
  if (aux_loss_coeff_ < 0) fail("moe_aux_loss_coeff = ", aux_loss_coeff_, ": must be >= 0 (0 turns the loss off)");
  const auto& hashed = c.moe_hash_routed_layers;
  if (!args.is_mtp_layer && std::find(hashed.begin(), hashed.end(), args.layer_number - 1) != hashed.end()) {
    hash_router_ = register_module("router", std::make_shared<HashRouter>(c));
  } else {
    router_ = register_module("router", std::make_shared<TopKRouter>(c));
  }
  experts_ = register_module("experts", std::make_shared<GroupedExperts>(c, args.pg));
  if (sub.shared_experts) shared_experts_ = register_module("shared_experts", (*sub.shared_experts)(args));
  if (c.moe_shared_expert_gate) {
    if (!shared_experts_)
      fail("moe_shared_expert_gate = true, but this MoE has no shared expert to gate "
           "(moe_shared_expert_intermediate_size = ", c.moe_shared_expert_intermediate_size, ")");
    shared_experts_gate_ = register_module("shared_experts_gate",
                                           std::make_shared<SharedExpertGate>(c.hidden_size, c.init_method_std));
  }
}

Builder<slots::Mlp> MoE::builder(MoESubmodules submodules) {
  return [submodules = std::move(submodules)](const LayerArgs& args) { return std::make_shared<MoE>(args, submodules); };
}

at::Tensor MoE::token_ids(const at::Tensor& hidden, const ForwardContext& ctx) const {
  if (!ctx.input_ids)
    fail("MoE (layer ", layer_number_, "): hash-routed (moe_hash_routed_layers holds ", layer_number_ - 1,
         ") and this forward has no token ids (ForwardContext::input_ids: the model sets them where it embeds the "
         "tokens, the pipeline schedule on later stages)");
  auto ids = *ctx.input_ids;
  // Sequence parallelism hands each tensor-parallel rank its share of the positions.
  if (pg_.splits_sequence() && ids.dim() > parallel::kSequenceDim)
    ids = ids.chunk(pg_.tp_size(), parallel::kSequenceDim)[pg_.tp_rank()];
  const auto tokens = hidden.numel() / hidden.size(-1);
  if (ids.numel() != tokens)
    fail("MoE (layer ", layer_number_, "): hash routing needs one token id per position; ForwardContext::input_ids ",
         "has shape ", ids.sizes(), " for hidden states of shape ", hidden.sizes());
  return ids.reshape({-1});
}

MixerOutput MoE::forward(const at::Tensor& hidden, ForwardContext& ctx) {
  auto tokens = hidden.reshape({-1, hidden.size(-1)});
  auto routing = hash_router_ ? hash_router_->forward(tokens, token_ids(hidden, ctx)) : router_->forward(tokens);
  auto output = experts_->forward(tokens, routing.indices, routing.weights);
  if (shared_experts_) {
    auto shared = shared_experts_->forward(tokens, ctx).output;
    if (shared_experts_gate_) shared = shared_experts_gate_->forward(tokens) * shared;
    output = output + shared;
  }
  // Also without grad: under activation recompute the first run is gradient-free, and the loss it
  // reports is the value the replay's graph later stands behind (model/recompute.h).
  if (aux_loss_coeff_ > 0 && is_training() && !hash_router_)
    ctx.aux_losses.push_back(switch_load_balancing_loss(routing.probs, topk_, aux_loss_coeff_));
  return {output.view(hidden.sizes()), std::nullopt};
}

}  // namespace strata
