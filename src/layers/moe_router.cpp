#include "strata/layers/moe_router.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include "strata/core/error.h"

namespace strata {

namespace {

// Guards a division whose denominator is a sum of sigmoids that may all underflow to 0 (Megatron's epsilon).
constexpr double kTinyDenominator = 1e-20;

}  // namespace

RouterScoreFunction parse_router_score_function(const std::string& value) {
  if (value == "softmax") return RouterScoreFunction::Softmax;
  if (value == "sigmoid") return RouterScoreFunction::Sigmoid;
  if (value == "sqrtsoftplus") return RouterScoreFunction::SqrtSoftplus;
  fail("moe_router_score_function: '", value, "' is not a score function; valid values: softmax, sigmoid, sqrtsoftplus");
}

TopKRouter::TopKRouter(const TransformerConfig& c)
    : score_function_(parse_router_score_function(c.moe_router_score_function)),
      topk_(c.moe_router_topk),
      normalize_topk_(c.moe_router_norm_topk_prob),
      scaling_factor_(c.moe_router_topk_scaling_factor) {
  if (c.num_moe_experts <= 0) fail("num_moe_experts = ", c.num_moe_experts, ": a MoE layer needs at least one expert");
  if (topk_ < 1 || topk_ > c.num_moe_experts)
    fail("moe_router_topk = ", topk_, ": must be between 1 and num_moe_experts = ", c.num_moe_experts);
  weight_ = register_parameter("weight", at::randn({c.num_moe_experts, c.hidden_size}) * c.init_method_std);
  if (c.moe_router_enable_expert_bias) expert_bias_ = register_buffer("expert_bias", at::zeros({c.num_moe_experts}));
}

at::Tensor router_logits(const at::Tensor& x, const at::Tensor& weight) {
  // Keep CUDA autocast from running the gating matmul in bf16.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
  return at::linear(x.to(at::kFloat), weight.to(at::kFloat));
}

at::Tensor router_scores(const at::Tensor& logits, RouterScoreFunction score_function) {
  switch (score_function) {
    case RouterScoreFunction::Softmax: return at::softmax(logits, -1);
    case RouterScoreFunction::Sigmoid: return at::sigmoid(logits);
    case RouterScoreFunction::SqrtSoftplus: return at::sqrt(at::softplus(logits));
  }
  fail("router_scores: unknown score function");
}

at::Tensor routing_weights(const at::Tensor& scores, const at::Tensor& indices, bool normalize, double scaling_factor) {
  auto weights = scores.gather(1, indices);
  if (normalize) weights = weights / (weights.sum(-1, true) + kTinyDenominator);
  if (scaling_factor != 1.0) weights = weights * scaling_factor;
  return weights;
}

Routing TopKRouter::forward(const at::Tensor& x) {
  Routing routing;
  const auto scores = router_scores(router_logits(x, weight_), score_function_);
  // Sigmoid and sqrtsoftplus scores are independent per expert; the load-balancing loss wants a distribution.
  routing.probs = score_function_ == RouterScoreFunction::Softmax ? scores
                                                                  : scores / (scores.sum(-1, true) + kTinyDenominator);
  // The expert bias (DeepSeek-V3's aux-loss-free balancing) only steers which experts are
  // picked; the weights stay the unbiased scores of the picked experts.
  auto selection_scores = expert_bias_.defined() ? scores + expert_bias_.to(at::kFloat) : scores;
  routing.indices = std::get<1>(at::topk(selection_scores, topk_, -1));
  routing.weights = routing_weights(scores, routing.indices, normalize_topk_, scaling_factor_);
  return routing;
}

at::Tensor switch_load_balancing_loss(const at::Tensor& probs, int64_t topk, double coeff) {
  const auto tokens = probs.size(0), experts = probs.size(1);
  auto assigned = std::get<1>(at::topk(probs.detach(), topk, -1)).reshape({-1});
  auto assignments_per_expert = at::bincount(assigned, {}, experts).to(probs.scalar_type());  // f_e * T * k
  auto probability_per_expert = probs.sum(0);                                                 // P_e * T
  const double normaliser = static_cast<double>(topk * tokens) * static_cast<double>(tokens);
  return (assignments_per_expert * probability_per_expert).sum() * (coeff * static_cast<double>(experts) / normaliser);
}

}  // namespace strata
