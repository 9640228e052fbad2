#include "strata/train/grad_norm.h"

#include <cmath>

namespace strata::train {

at::Tensor squared_norms(const std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return at::zeros({0}, at::kDouble);
  std::vector<at::Tensor> float32;
  float32.reserve(tensors.size());
  for (const auto& t : tensors) float32.push_back(t.scalar_type() == at::kFloat ? t : t.to(at::kFloat));
  return at::stack(at::_foreach_norm(float32, 2)).to(at::kDouble).pow(2);
}

void scale_in_place(const std::vector<at::Tensor>& tensors, double scale) {
  if (!tensors.empty()) at::_foreach_mul_(tensors, scale);
}

double clip_grad_norm(const std::map<std::string, at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  const double norm = std::sqrt(squared_norms(grads).sum().item<double>());
  if (max_norm > 0.0 && norm > max_norm) scale_in_place(grads, max_norm / (norm + 1e-6));
  return norm;
}

}  // namespace strata::train
