#include "strata/layers/hash_router.h"

#include "strata/core/error.h"

namespace strata {

HashRouter::HashRouter(const TransformerConfig& c)
    : score_function_(parse_router_score_function(c.moe_router_score_function)),
      normalize_topk_(c.moe_router_norm_topk_prob),
      scaling_factor_(c.moe_router_topk_scaling_factor) {
  const auto experts = c.num_moe_experts, topk = c.moe_router_topk;
  if (experts <= 0) fail("num_moe_experts = ", experts, ": a MoE layer needs at least one expert");
  if (topk < 1 || topk > experts)
    fail("moe_router_topk = ", topk, ": must be between 1 and num_moe_experts = ", experts);
  if (c.vocab_size <= 0) fail("vocab_size = ", c.vocab_size, ": the hash router's table has one row per token id");
  weight_ = register_parameter("weight", at::randn({experts, c.hidden_size}) * c.init_method_std);
  // The k largest of E uniform draws: k distinct experts, every k-subset equally likely.
  auto table = std::get<1>(at::topk(at::rand({c.vocab_size, experts}), topk, -1));
  tid2eid_ = register_buffer("tid2eid", table.to(at::kLong));
}

Routing HashRouter::forward(const at::Tensor& x, const at::Tensor& token_ids) {
  if (token_ids.dim() != 1 || token_ids.size(0) != x.size(0))
    fail("hash router: token ids of shape ", token_ids.sizes(), " for ", x.size(0), " tokens; expected [", x.size(0),
         "]");
  if (at::isFloatingType(token_ids.scalar_type()) || token_ids.scalar_type() == at::kBool)
    fail("hash router: token ids of dtype ", token_ids.scalar_type(), "; expected integers");
  // The ids are not range-checked here (a device sync per layer): the embedding took the same
  // ids against the same vocab_size, and index_select refuses one outside the table.
  Routing routing;
  routing.indices = tid2eid_.index_select(0, token_ids.to(tid2eid_.device(), at::kLong));
  const auto scores = router_scores(router_logits(x, weight_), score_function_);
  routing.weights = routing_weights(scores, routing.indices, normalize_topk_, scaling_factor_);
  return routing;
}

void HashRouter::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  weight_.set_data(weight_.to(device, dtype, non_blocking));
  tid2eid_.set_data(tid2eid_.to(device, non_blocking));
}

void HashRouter::to(torch::Dtype dtype, bool non_blocking) { weight_.set_data(weight_.to(dtype, non_blocking)); }

}  // namespace strata
