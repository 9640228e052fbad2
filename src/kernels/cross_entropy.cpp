#include "strata/kernels/cross_entropy.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"

namespace strata::kernels {

at::Tensor causal_lm_cross_entropy_reference(const at::Tensor& logits, const at::Tensor& labels) {
  const auto t = logits.size(1);
  auto predicted = logits.narrow(1, 0, t - 1).reshape({-1, logits.size(-1)}).to(at::kFloat);
  auto targets = labels.narrow(1, 1, t - 1).reshape({-1});
  return at::cross_entropy_loss(predicted, targets, /*weight=*/{}, at::Reduction::Mean, kIgnoreIndex);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class CrossEntropyFunction : public torch::autograd::Function<CrossEntropyFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& labels) {
    auto x = logits.contiguous();
    auto targets = labels.to(at::kLong).contiguous();
    const auto batch = x.size(0), seq = x.size(1), vocab = x.size(2);
    auto f32 = x.options().dtype(at::kFloat);
    auto row_loss = at::empty({batch * seq}, f32);
    auto logsumexp = at::empty({batch * seq}, f32);
    c10::DeviceGuard guard(x.device());
    launch::cross_entropy_forward(launch_dtype(x.scalar_type(), "causal_lm_cross_entropy_cuda: logits"), x.data_ptr(),
                                  targets.data_ptr<int64_t>(), row_loss.data_ptr<float>(), logsumexp.data_ptr<float>(),
                                  batch, seq, vocab, kIgnoreIndex, current_stream(x.device()));
    // The mean over predicted positions; no position predicted gives 0 / 0 = NaN, as ATen's does.
    auto count = targets.narrow(1, 1, seq - 1).ne(kIgnoreIndex).sum().to(at::kFloat);
    ctx->save_for_backward({x, targets, logsumexp, count});
    return row_loss.sum() / count;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& targets = saved[1];
    const auto& logsumexp = saved[2];
    const auto& count = saved[3];
    auto grad_loss = grads[0].to(at::kFloat).contiguous();
    auto grad_logits = at::empty_like(x);
    c10::DeviceGuard guard(x.device());
    launch::cross_entropy_backward(launch_dtype(x.scalar_type(), "causal_lm_cross_entropy_cuda: logits"), x.data_ptr(),
                                   targets.data_ptr<int64_t>(), logsumexp.data_ptr<float>(),
                                   grad_loss.data_ptr<float>(), count.data_ptr<float>(), grad_logits.data_ptr(),
                                   x.size(0), x.size(1), x.size(2), kIgnoreIndex, current_stream(x.device()));
    return {grad_logits, at::Tensor()};
  }
};

bool kernel_shapes(const at::Tensor& logits, const at::Tensor& labels) {
  return logits.dim() == 3 && labels.dim() == 2 && labels.size(0) == logits.size(0) &&
         labels.size(1) == logits.size(1) && labels.device() == logits.device() && !labels.is_floating_point();
}

}  // namespace

at::Tensor causal_lm_cross_entropy_cuda(const at::Tensor& logits, const at::Tensor& labels) {
  if (!cuda_kernels_built())
    fail("causal_lm_cross_entropy_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!logits.is_cuda()) fail("causal_lm_cross_entropy_cuda: logits are on ", logits.device(), "; expected CUDA");
  if (!kernel_shapes(logits, labels))
    fail("causal_lm_cross_entropy_cuda: logits ", logits.sizes(), " on ", logits.device(), " with labels ",
         labels.sizes(), " (", labels.scalar_type(), ") on ", labels.device(),
         "; expected logits [B, T, V] and integer labels [B, T] on the same device");
  return CrossEntropyFunction::apply(logits, labels);
}

at::Tensor causal_lm_cross_entropy(const at::Tensor& logits, const at::Tensor& labels) {
  if (use_cuda_kernels(logits) && kernel_shapes(logits, labels)) return causal_lm_cross_entropy_cuda(logits, labels);
  return causal_lm_cross_entropy_reference(logits, labels);
}

}  // namespace strata::kernels
