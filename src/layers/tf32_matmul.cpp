#include "strata/layers/tf32_matmul.h"

#include <ATen/Context.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"

namespace strata {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class AllowTf32 {
 public:
  AllowTf32() : before_(at::globalContext().allowTF32CuBLAS()) { at::globalContext().setAllowTF32CuBLAS(true); }
  ~AllowTf32() { at::globalContext().setAllowTF32CuBLAS(before_); }
  AllowTf32(const AllowTf32&) = delete;
  AllowTf32& operator=(const AllowTf32&) = delete;

 private:
  bool before_;
};

// Its own backward, so that the two gradient products run in TF32 as well (autograd's matmul
// backward would run under whatever the switch says when backward runs).
class Tf32MatmulFunction : public torch::autograd::Function<Tf32MatmulFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b) {
    ctx->save_for_backward({a, b});
    AllowTf32 tf32;
    return at::matmul(a, b);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& a = saved[0];
    const auto& b = saved[1];
    const auto& grad = grads[0];
    AllowTf32 tf32;
    return {ctx->needs_input_grad(0) ? at::matmul(grad, b.transpose(-1, -2)) : at::Tensor(),
            ctx->needs_input_grad(1) ? at::matmul(a.transpose(-1, -2), grad) : at::Tensor()};
  }
};

}  // namespace

at::Tensor tf32_matmul(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() < 2 || a.dim() != b.dim() || a.sizes().slice(0, a.dim() - 2) != b.sizes().slice(0, b.dim() - 2) ||
      a.size(-1) != b.size(-2))
    fail("tf32_matmul: a of shape ", a.sizes(), " and b of shape ", b.sizes(),
         "; expected [..., M, K] and [..., K, N] with the same batch dimensions");
  if (a.scalar_type() != at::kFloat || b.scalar_type() != at::kFloat)
    fail("tf32_matmul: a is ", a.scalar_type(), " and b ", b.scalar_type(), "; expected float32");
  return Tf32MatmulFunction::apply(a, b);
}

at::Tensor matmul_tf32_if(bool tf32, const at::Tensor& a, const at::Tensor& b) {
  return tf32 ? tf32_matmul(a, b) : at::matmul(a, b);
}

}  // namespace strata
