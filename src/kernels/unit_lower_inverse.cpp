#include "strata/kernels/unit_lower_inverse.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"

namespace strata::kernels {

namespace {

void check_square(const at::Tensor& a, const char* fn) {
  if (a.dim() < 2 || a.size(-1) != a.size(-2))
    fail(fn, ": a has shape ", a.sizes(), "; expected [..., C, C]");
}

bool kernel_applies(const at::Tensor& a) {
  return use_cuda_kernels(a) && a.scalar_type() == at::kFloat && a.size(-1) >= 1 &&
         a.size(-1) <= launch::kMaxUnitLowerInverseSize;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class UnitLowerInverseFunction : public torch::autograd::Function<UnitLowerInverseFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a) {
    auto in = a.contiguous();
    const int64_t n = in.size(-1);
    auto t = at::empty_like(in);
    c10::DeviceGuard guard(in.device());
    launch::unit_lower_inverse(in.data_ptr<float>(), t.data_ptr<float>(), in.numel() / (n * n), n,
                               current_stream(in.device()));
    ctx->save_for_backward({t});
    return t;
  }

  // T = M^-1 gives dT = -T dM T, so grad_M = -T^T grad_T T^T; A only feeds M's strictly lower
  // triangle, as in the twin.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto t = ctx->get_saved_variables()[0];
    const auto t_transposed = t.mT();
    auto grad_a = at::matmul(t_transposed, at::matmul(grads[0].to(at::kFloat), t_transposed));
    return {grad_a.tril_(-1).neg_()};
  }
};

}  // namespace

at::Tensor unit_lower_inverse_reference(const at::Tensor& a) {
  check_square(a, "unit_lower_inverse_reference");
  // unitriangular: the solve reads only a's strictly lower triangle, and its gradient is zero
  // elsewhere.
  auto identity = at::eye(a.size(-1), a.options()).expand_as(a);
  return at::linalg_solve_triangular(a, identity, /*upper=*/false, /*left=*/true, /*unitriangular=*/true);
}

at::Tensor unit_lower_inverse_cuda(const at::Tensor& a) {
  if (!cuda_kernels_built())
    fail("unit_lower_inverse_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!a.is_cuda()) fail("unit_lower_inverse_cuda: a is on ", a.device(), "; expected a CUDA tensor");
  if (a.scalar_type() != at::kFloat) fail("unit_lower_inverse_cuda: a is ", a.scalar_type(), "; expected float32");
  check_square(a, "unit_lower_inverse_cuda");
  if (a.size(-1) < 1 || a.size(-1) > launch::kMaxUnitLowerInverseSize)
    fail("unit_lower_inverse_cuda: a has shape ", a.sizes(), "; expected matrices of size 1..",
         launch::kMaxUnitLowerInverseSize);
  return UnitLowerInverseFunction::apply(a);
}

at::Tensor unit_lower_inverse(const at::Tensor& a) {
  check_square(a, "unit_lower_inverse");
  return kernel_applies(a) ? unit_lower_inverse_cuda(a) : unit_lower_inverse_reference(a);
}

}  // namespace strata::kernels
