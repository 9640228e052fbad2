#include "strata/train/optimizer.h"

#include <cmath>

#include "strata/core/compat.h"
#include "strata/core/error.h"
#include "strata/core/exact_conversion.h"

namespace strata::train {

AdamW::AdamW(std::map<std::string, at::Tensor> params, AdamWOptions options) : options_(options) {
  for (auto& [name, p] : params) {
    at::NoGradGuard no_grad;
    // Megatron's rule: no weight decay for 1-D parameters (norm scales, biases, per-head scalars),
    // except the q/k norms under --apply-wd-to-qk-layernorm (matched by name, as Megatron does).
    const bool qk_norm = name.find("q_layernorm") != std::string::npos || name.find("k_layernorm") != std::string::npos;
    const bool decay = p.dim() >= 2 || (options.apply_wd_to_qk_layernorm && qk_norm);
    slots_.emplace(name, Slot{p, at::zeros_like(p, at::kFloat), at::zeros_like(p, at::kFloat), decay});
  }
}

bool AdamW::decays(const std::string& name) const {
  auto it = slots_.find(name);
  if (it == slots_.end()) fail("AdamW: no parameter named ", name);
  return it->second.decay;
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++steps_;
  if (fused_step(lr)) return;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(steps_));
  for (auto& [name, s] : slots_) {
    const auto& grad = s.param.grad();
    if (!grad.defined()) continue;
    auto g = grad.to(at::kFloat);
    s.exp_avg.mul_(b1).add_(g, 1.0 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(g, g, 1.0 - b2);
    auto update = (s.exp_avg / bias1) / ((s.exp_avg_sq / bias2).sqrt_().add_(options_.eps));
    if (s.decay && options_.weight_decay > 0.0) s.param.mul_(1.0 - lr * options_.weight_decay);
    s.param.sub_(update.to(s.param.scalar_type()), lr);
  }
}

bool AdamW::fused_step(double lr) {
  // Two launches per step (one per decay group) instead of ~8 per parameter; float32 parameters
  // on CUDA only, the layout the trainer uses (bf16 runs autocast over float32 master weights).
  struct Group {
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs;
  } groups[2];
  for (auto& [name, s] : slots_) {
    const auto& grad = s.param.grad();
    if (!grad.defined()) continue;
    if (!s.param.is_cuda() || s.param.scalar_type() != at::kFloat || grad.scalar_type() != at::kFloat) return false;
    auto& g = groups[s.decay ? 1 : 0];
    g.params.push_back(s.param);
    g.grads.push_back(grad);
    g.exp_avgs.push_back(s.exp_avg);
    g.exp_avg_sqs.push_back(s.exp_avg_sq);
  }
  for (int decay = 0; decay < 2; ++decay) {
    auto& g = groups[decay];
    if (!compat::fused_adamw_step(g.params, g.grads, g.exp_avgs, g.exp_avg_sqs, steps_, lr, options_.beta1,
                                  options_.beta2, decay ? options_.weight_decay : 0.0, options_.eps))
      return false;
  }
  return true;
}

void AdamW::zero_grad() {
  for (auto& [name, s] : slots_) {
    auto& grad = s.param.mutable_grad();
    if (grad.defined()) grad = at::Tensor();
  }
}

std::map<std::string, at::Tensor> AdamW::state() const {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, s] : slots_) {
    out.emplace("exp_avg." + name, s.exp_avg);
    out.emplace("exp_avg_sq." + name, s.exp_avg_sq);
  }
  out.emplace("step", at::full({}, steps_, at::kLong));
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state, const std::string& source) {
  std::map<std::string, at::Tensor> targets;  // what each name of the state loads into
  for (auto& [name, s] : slots_) {
    targets.emplace("exp_avg." + name, s.exp_avg);
    targets.emplace("exp_avg_sq." + name, s.exp_avg_sq);
  }
  targets.emplace("step", at::empty({}, at::kLong));
  // Every problem in one error, and nothing is loaded unless all of the state fits.
  std::vector<std::string> missing, unexpected, mismatched, wrongly_typed;
  for (const auto& [key, target] : targets) {
    auto it = state.find(key);
    if (it == state.end()) {
      missing.push_back(key);
      continue;
    }
    const at::Tensor& tensor = it->second;
    if (tensor.sizes() != target.sizes())
      mismatched.push_back(cat(key, " (checkpoint ", tensor.sizes(), ", expected ", target.sizes(), ")"));
    if (!converts_exactly(tensor.scalar_type(), target.scalar_type()))
      wrongly_typed.push_back(cat(key, " (checkpoint ", tensor.scalar_type(), ", expected ", target.scalar_type(), ")"));
  }
  for (const auto& [key, tensor] : state)
    if (!targets.count(key)) unexpected.push_back(key);
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty() || !wrongly_typed.empty()) {
    std::string message = cat(source, ": cannot load the optimizer state (is it of a different model?):");
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      message += cat("\n  ", what, " (", keys.size(), "):");
      for (const auto& key : keys) message += "\n    " + key;
    };
    list("missing tensors", missing);
    list("unexpected tensors", unexpected);
    list("wrongly shaped tensors", mismatched);
    list("wrongly typed tensors (a dtype that does not convert exactly)", wrongly_typed);
    throw Error(message);
  }
  const int64_t steps = state.at("step").item<int64_t>();
  if (steps < 0) fail(source, ": optimizer state step is ", steps, ", expected a count of steps taken (>= 0)");

  at::NoGradGuard no_grad;
  for (auto& [key, target] : targets)
    if (key != "step") target.copy_(state.at(key));
  steps_ = steps;
}

}  // namespace strata::train
