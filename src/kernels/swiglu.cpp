#include "strata/kernels/swiglu.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"

namespace strata::kernels {

at::Tensor swiglu_reference(const at::Tensor& gate_up) {
  auto halves = gate_up.chunk(2, -1);
  return at::silu(halves[0]) * halves[1];
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SwiGluFunction : public torch::autograd::Function<SwiGluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate_up) {
    auto in = gate_up.contiguous();
    const auto cols = in.size(-1) / 2;
    const auto rows = cols == 0 ? 0 : in.numel() / (2 * cols);
    auto out_sizes = in.sizes().vec();
    out_sizes.back() = cols;
    auto out = at::empty(out_sizes, in.options());
    c10::DeviceGuard guard(in.device());
    launch::swiglu_forward(launch_dtype(in.scalar_type(), "swiglu_cuda: gate_up"), in.data_ptr(), out.data_ptr(), rows,
                           cols, current_stream(in.device()));
    ctx->save_for_backward({in});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto in = ctx->get_saved_variables()[0];
    auto grad_out = grads[0].to(in.scalar_type()).contiguous();
    const auto cols = in.size(-1) / 2;
    const auto rows = cols == 0 ? 0 : in.numel() / (2 * cols);
    auto grad_in = at::empty_like(in);
    c10::DeviceGuard guard(in.device());
    launch::swiglu_backward(launch_dtype(in.scalar_type(), "swiglu_cuda: gate_up"), grad_out.data_ptr(), in.data_ptr(),
                            grad_in.data_ptr(), rows, cols, current_stream(in.device()));
    return {grad_in};
  }
};

}  // namespace

at::Tensor swiglu_cuda(const at::Tensor& gate_up) {
  if (!cuda_kernels_built()) fail("swiglu_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!gate_up.is_cuda()) fail("swiglu_cuda: gate_up is on ", gate_up.device(), "; expected a CUDA tensor");
  if (gate_up.dim() == 0 || gate_up.size(-1) % 2 != 0)
    fail("swiglu_cuda: gate_up has shape ", gate_up.sizes(), "; expected a last dimension of even size [gate | up]");
  return SwiGluFunction::apply(gate_up);
}

at::Tensor swiglu(const at::Tensor& gate_up) {
  if (use_cuda_kernels(gate_up) && gate_up.dim() > 0 && gate_up.size(-1) % 2 == 0) return swiglu_cuda(gate_up);
  return swiglu_reference(gate_up);
}

}  // namespace strata::kernels
