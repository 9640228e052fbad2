#include "strata/kernels/sinkhorn.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"

namespace strata::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SinkhornFunction : public torch::autograd::Function<SinkhornFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, int64_t iters, double eps) {
    auto in = logits.contiguous();
    const int64_t n = in.size(-1);
    auto out = at::empty_like(in);
    c10::DeviceGuard guard(in.device());
    launch::sinkhorn_forward(in.data_ptr<float>(), out.data_ptr<float>(), in.numel() / (n * n), n, iters,
                             static_cast<float>(eps), current_stream(in.device()));
    ctx->save_for_backward({in});
    ctx->saved_data["iters"] = iters;
    ctx->saved_data["eps"] = eps;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto in = ctx->get_saved_variables()[0];
    const int64_t iters = ctx->saved_data["iters"].toInt();
    const int64_t n = in.size(-1), count = in.numel() / (n * n);
    auto grad_out = grads[0].to(at::kFloat).contiguous();
    auto grad_in = at::empty_like(in);
    auto scratch = at::empty({launch::sinkhorn_scratch_floats(count, n, iters)}, in.options());
    c10::DeviceGuard guard(in.device());
    launch::sinkhorn_backward(in.data_ptr<float>(), grad_out.data_ptr<float>(), grad_in.data_ptr<float>(),
                              scratch.data_ptr<float>(), count, n, iters,
                              static_cast<float>(ctx->saved_data["eps"].toDouble()), current_stream(in.device()));
    return {grad_in, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool sinkhorn_kernel_applies(const at::Tensor& logits) {
  return use_cuda_kernels(logits) && logits.scalar_type() == at::kFloat && logits.dim() >= 2 &&
         logits.size(-1) == logits.size(-2) && logits.size(-1) >= 1 && logits.size(-1) <= launch::kMaxHyperStreams;
}

at::Tensor sinkhorn_cuda(const at::Tensor& logits, int64_t iters, double eps) {
  if (!cuda_kernels_built()) fail("sinkhorn_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!logits.is_cuda()) fail("sinkhorn_cuda: logits are on ", logits.device(), "; expected a CUDA tensor");
  if (logits.scalar_type() != at::kFloat) fail("sinkhorn_cuda: logits are ", logits.scalar_type(), "; expected float32");
  if (logits.dim() < 2 || logits.size(-1) != logits.size(-2) || logits.size(-1) < 1 ||
      logits.size(-1) > launch::kMaxHyperStreams)
    fail("sinkhorn_cuda: logits of shape ", logits.sizes(), "; expected [..., n, n] with 1 <= n <= ",
         launch::kMaxHyperStreams);
  if (iters < 1) fail("sinkhorn_cuda: iters is ", iters, ", expected >= 1");
  return SinkhornFunction::apply(logits, iters, eps);
}

}  // namespace strata::kernels
