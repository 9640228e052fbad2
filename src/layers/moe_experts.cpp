#include "strata/layers/moe_experts.h"

#include <cmath>

#include "strata/core/error.h"
#include "strata/layers/mlp.h"
#include "strata/parallel/expert_dispatch.h"

namespace strata {

GroupedLinear::GroupedLinear(int64_t num_experts, int64_t input_size, int64_t output_size, double init_std,
                             const ProcessGroups& pg)
    : shard_{.dim = 0, .axis = parallel::ShardAxis::expert, .group = pg.ep} {
  // Initialised whole and then split, so every expert-parallel size starts from the same numbers.
  const auto whole = at::randn({num_experts, output_size, input_size}) * init_std;
  weight_ = register_parameter("weight", parallel::shard_of(whole, shard_, "experts' grouped weight"));
}

at::Tensor GroupedLinear::forward(const at::Tensor& x, int64_t expert) { return at::linear(x, weight_[expert]); }

GroupedExperts::GroupedExperts(const TransformerConfig& c, const ProcessGroups& pg)
    : num_experts_(c.num_moe_experts),
      pg_(pg),
      activation_(c.activation_func),
      gated_(c.gated_linear_unit),
      clamp_value_(c.activation_func_clamp_value) {
  const auto ffn = c.moe_ffn_hidden_size;
  if (ffn <= 0) fail("moe_ffn_hidden_size = ", ffn, ": the experts' hidden size must be positive");
  if (num_experts_ % pg.ep_size() != 0)
    fail("num_moe_experts = ", num_experts_, " does not split over ", pg.ep_size(), " expert-parallel ranks");
  if (c.add_bias_linear)
    fail("add_bias_linear = true: MoE experts keep their weights grouped without biases; set it to false");
  linear_fc1_ = register_module("linear_fc1", std::make_shared<GroupedLinear>(
      num_experts_, c.hidden_size, gated_ ? 2 * ffn : ffn, c.init_method_std, pg));
  // As Mlp's linear_fc2: the output projection's init shrinks with depth (residual branches add up).
  linear_fc2_ = register_module("linear_fc2", std::make_shared<GroupedLinear>(
      num_experts_, ffn, c.hidden_size, c.init_method_std / std::sqrt(2.0 * static_cast<double>(c.num_layers)), pg));
}

at::Tensor GroupedExperts::expert_mlp(const at::Tensor& x, int64_t expert) {
  auto h = linear_fc1_->forward(x, expert);
  if (gated_) {
    h = gated_activation(h, activation_, clamp_value_);
  } else {
    h = activate(h, activation_);
  }
  return linear_fc2_->forward(h, expert);
}

at::Tensor GroupedExperts::forward(const at::Tensor& x, const at::Tensor& indices, const at::Tensor& weights) {
  if (pg_.ep_size() > 1)
    return parallel::expert_parallel_moe(x, indices, weights, num_experts_, pg_.ep,
                                         [this](int64_t expert, const at::Tensor& rows) { return expert_mlp(rows, expert); });
  if (x.size(0) == 0) return at::zeros_like(x);
  const auto topk = indices.size(1);
  // Sort the T*k assignments by expert so each expert's tokens form one contiguous run; the
  // stable sort keeps them in token order within a run.
  auto assigned_experts = indices.reshape({-1});
  auto order = at::argsort(assigned_experts, /*stable=*/true, /*dim=*/0);
  auto token_of = at::div(order, topk, "floor");  // assignment t * k + j belongs to token t
  auto dispatched = x.index_select(0, token_of);
  // One host sync for the run lengths; the loop is over experts, never over tokens.
  auto counts = at::bincount(assigned_experts, {}, num_experts_).cpu();
  const auto* count = counts.data_ptr<int64_t>();

  std::vector<at::Tensor> outputs;
  int64_t offset = 0;
  for (int64_t e = 0; e < num_experts_; ++e) {
    if (count[e] == 0) continue;
    outputs.push_back(expert_mlp(dispatched.narrow(0, offset, count[e]), e));
    offset += count[e];
  }
  // Weight in float32 like HF (routing weights are float32), then return to the hidden dtype.
  auto weighted = at::cat(outputs) * weights.reshape({-1}).index_select(0, order).unsqueeze(1);
  return at::zeros_like(x).index_add(0, token_of, weighted.to(x.scalar_type()));
}

}  // namespace strata
