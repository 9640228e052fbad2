#include "strata/kernels/l2_normalize_heads.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/dtype.h"
#include "strata/core/error.h"
#include "strata/kernels/dispatch.h"
#include "strata/kernels/l2_normalize_heads_launch.h"

namespace strata::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y [B, T, Hk, D] -> [B, T, Hk * repeats, D], each head repeated, in heads-first memory as the
// kernels write it.
at::Tensor repeat_heads_first(const at::Tensor& y, int64_t repeats) {
  const int64_t batch = y.size(0), seq = y.size(1), key_heads = y.size(2), dim = y.size(3);
  return y.transpose(1, 2)
      .unsqueeze(2)
      .expand({batch, key_heads, repeats, seq, dim})
      .reshape({batch, key_heads * repeats, seq, dim})
      .transpose(1, 2);
}

class L2NormalizeHeadsFunction : public torch::autograd::Function<L2NormalizeHeadsFunction> {
 public:
  // Returns the contiguous [B, H, T, D] array.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t repeats, double scale, double eps) {
    const int64_t batch = x.size(0), seq = x.size(1), key_heads = x.size(2), dim = x.size(3);
    auto out = at::empty({batch, key_heads * repeats, seq, dim}, x.options());
    c10::DeviceGuard guard(x.device());
    launch::l2_normalize_heads_forward(launch_dtype(x.scalar_type(), "l2_normalize_heads_cuda: x"), x.data_ptr(),
                                       row_strides(x), out.data_ptr(), batch, seq, key_heads, repeats, dim,
                                       static_cast<float>(scale), static_cast<float>(eps), current_stream(x.device()));
    ctx->save_for_backward({x});
    ctx->saved_data["repeats"] = repeats;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["eps"] = eps;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    const int64_t batch = x.size(0), seq = x.size(1), key_heads = x.size(2), dim = x.size(3);
    auto grad = grads[0].to(x.scalar_type());  // [B, H, T, D]
    if (grad.stride(3) != 1) grad = grad.contiguous();
    grad = grad.transpose(1, 2);
    auto grad_x = at::empty({batch, seq, key_heads, dim}, x.options());
    c10::DeviceGuard guard(x.device());
    launch::l2_normalize_heads_backward(
        launch_dtype(x.scalar_type(), "l2_normalize_heads_cuda: x"), grad.data_ptr(), row_strides(grad), x.data_ptr(),
        row_strides(x), grad_x.data_ptr(), batch, seq, key_heads, ctx->saved_data["repeats"].toInt(), dim,
        static_cast<float>(ctx->saved_data["scale"].toDouble()), static_cast<float>(ctx->saved_data["eps"].toDouble()),
        current_stream(x.device()));
    return {grad_x, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool kernel_dtype(at::ScalarType type) { return type == at::kFloat || type == at::kBFloat16 || type == at::kHalf; }

bool kernel_shape(const at::Tensor& x) {
  return x.dim() == 4 && x.size(3) >= 1 && x.size(3) <= launch::kMaxL2NormalizeHeadDim;
}

void check_arguments(const char* fn, const at::Tensor& x, int64_t repeats) {
  if (x.dim() != 4) fail(fn, ": x of shape ", x.sizes(), ", expected [B, T, Hk, D]");
  if (repeats < 1) fail(fn, ": repeats is ", repeats, ", expected >= 1");
}

}  // namespace

at::Tensor l2_normalize_heads_reference(const at::Tensor& x, int64_t repeats, double scale, double eps) {
  check_arguments("l2_normalize_heads_reference", x, repeats);
  auto wide = at_least_float(x);
  auto normed = wide * at::rsqrt(wide.square().sum(-1, /*keepdim=*/true) + eps) * scale;
  return repeat_heads_first(normed.to(x.scalar_type()), repeats);
}

at::Tensor l2_normalize_heads_cuda(const at::Tensor& x, int64_t repeats, double scale, double eps) {
  check_arguments("l2_normalize_heads_cuda", x, repeats);
  if (!cuda_kernels_built())
    fail(
        "l2_normalize_heads_cuda: this build of strata has no CUDA kernels "
        "(configure with -DSTRATA_CUDA=ON)");
  if (!x.is_cuda() || !kernel_dtype(x.scalar_type()) || !kernel_shape(x))
    fail("l2_normalize_heads_cuda: x is ", x.scalar_type(), " ", x.sizes(), " on ", x.device(),
         "; expected a CUDA tensor [B, T, Hk, D] in float32, bfloat16 or "
         "float16 with D in 1..",
         launch::kMaxL2NormalizeHeadDim);
  return L2NormalizeHeadsFunction::apply(x.stride(3) == 1 ? x : x.contiguous(), repeats, scale, eps).transpose(1, 2);
}

bool l2_normalize_heads_kernels_take(const at::Tensor& x) {
  return use_cuda_kernels(x) && kernel_dtype(x.scalar_type()) && kernel_shape(x);
}

at::Tensor l2_normalize_heads(const at::Tensor& x, int64_t repeats, double scale, double eps) {
  if (l2_normalize_heads_kernels_take(x)) return l2_normalize_heads_cuda(x, repeats, scale, eps);
  return l2_normalize_heads_reference(x, repeats, scale, eps);
}

}  // namespace strata::kernels
