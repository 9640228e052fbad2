#include "strata/layers/sinkhorn.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "strata/core/error.h"
#include "strata/kernels/sinkhorn.h"

namespace strata {

namespace {

void check_arguments(const at::Tensor& logits, int64_t iters, double eps) {
  if (logits.dim() < 2 || logits.size(-1) != logits.size(-2))
    fail("sinkhorn_knopp: logits of shape ", logits.sizes(), ", expected [..., n, n]");
  if (iters < 1) fail("sinkhorn_knopp: iters is ", iters, ", expected >= 1");
  if (!(eps >= 0.0) || !std::isfinite(eps)) fail("sinkhorn_knopp: eps is ", eps, ", expected a finite value >= 0");
}

// Divides by the sums along `dim` (-1: rows, -2: columns).
at::Tensor normalise(const at::Tensor& m, int64_t dim, double eps) { return m / (m.sum(dim, /*keepdim=*/true) + eps); }

struct SinkhornKnoppFunction : torch::autograd::Function<SinkhornKnoppFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits, int64_t iters,
                            double eps) {
    ctx->save_for_backward({logits});
    ctx->saved_data["iters"] = iters;
    ctx->saved_data["eps"] = eps;
    return sinkhorn_knopp_unrolled(logits, iters, eps);  // grad mode is off here: nothing is recorded
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    // Grad mode is on here only when the caller asked for a differentiable backward.
    const bool create_graph = at::GradMode::is_enabled();
    auto logits = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::AutoGradMode grad_on(true);
    auto projected = sinkhorn_knopp_unrolled(logits, ctx->saved_data["iters"].toInt(), ctx->saved_data["eps"].toDouble());
    auto grad = torch::autograd::grad({projected}, {logits}, {grad_outputs[0]}, /*retain_graph=*/create_graph,
                                      create_graph);
    return {grad[0], at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor sinkhorn_knopp_unrolled(const at::Tensor& logits, int64_t iters, double eps) {
  check_arguments(logits, iters, eps);
  auto m = normalise(at::softmax(logits, -1) + eps, -2, eps);
  for (int64_t i = 1; i < iters; ++i) m = normalise(normalise(m, -1, eps), -2, eps);
  return m;
}

at::Tensor sinkhorn_knopp(const at::Tensor& logits, int64_t iters, double eps) {
  check_arguments(logits, iters, eps);
  if (kernels::sinkhorn_kernel_applies(logits)) return kernels::sinkhorn_cuda(logits, iters, eps);
  return SinkhornKnoppFunction::apply(logits, iters, eps);
}

at::Tensor sinkhorn_knopp_reference(const at::Tensor& logits, int64_t iters, double eps) {
  check_arguments(logits, iters, eps);
  return SinkhornKnoppFunction::apply(logits, iters, eps);
}

}  // namespace strata
