#include "strata/kernels/rms_norm.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"

namespace strata::kernels {

at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps) {
  auto x32 = x.to(at::kFloat);
  auto normed = (x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps)).to(x.scalar_type());
  return normed * weight;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Row chunks of the weight-gradient sum: enough (column tile, chunk) blocks to fill the GPU a few
// times, at least 64 rows per chunk.
int64_t weight_grad_chunks(int64_t rows, int64_t cols) {
  if (rows == 0) return 0;  // no partial sums: their sum is the zero gradient
  const int64_t column_tiles = (cols + 31) / 32;
  const int64_t wanted = std::max<int64_t>(1, 1024 / column_tiles);
  return std::clamp<int64_t>((rows + 63) / 64, 1, wanted);
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    const auto cols = x.size(-1);
    auto xc = x.contiguous();
    auto w32 = weight.to(at::kFloat).contiguous();
    const auto out_type = at::promote_types(x.scalar_type(), weight.scalar_type());
    auto y = at::empty(xc.sizes(), xc.options().dtype(out_type));
    const auto rows = cols == 0 ? 0 : xc.numel() / cols;
    auto rstd = at::empty({rows}, xc.options().dtype(at::kFloat));
    c10::DeviceGuard guard(x.device());
    launch::rms_norm_forward(launch_dtype(x.scalar_type(), "rms_norm_cuda: x"), launch_dtype(out_type, "rms_norm_cuda: y"),
                             xc.data_ptr(), w32.data_ptr<float>(), y.data_ptr(), rstd.data_ptr<float>(), rows, cols,
                             static_cast<float>(eps), current_stream(x.device()));
    ctx->save_for_backward({xc, w32, rstd});
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    ctx->saved_data["out_dtype"] = static_cast<int64_t>(out_type);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& xc = saved[0];
    const auto& w32 = saved[1];
    const auto& rstd = saved[2];
    const auto out_type = static_cast<at::ScalarType>(ctx->saved_data["out_dtype"].toInt());
    const auto weight_type = static_cast<at::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    auto grad_y = grads[0].to(out_type).contiguous();
    const auto cols = xc.size(-1);
    const auto rows = rstd.numel();
    const auto chunks = weight_grad_chunks(rows, cols);
    auto dx = at::empty_like(xc);
    auto partial = at::empty({chunks, cols}, xc.options().dtype(at::kFloat));
    c10::DeviceGuard guard(xc.device());
    launch::rms_norm_backward(launch_dtype(xc.scalar_type(), "rms_norm_cuda: x"),
                              launch_dtype(out_type, "rms_norm_cuda: grad_y"), grad_y.data_ptr(), xc.data_ptr(),
                              w32.data_ptr<float>(), rstd.data_ptr<float>(), dx.data_ptr(), partial.data_ptr<float>(),
                              chunks, rows, cols, current_stream(xc.device()));
    return {dx, partial.sum(0).to(weight_type), at::Tensor()};
  }
};

}  // namespace

at::Tensor rms_norm_cuda(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (!cuda_kernels_built()) fail("rms_norm_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!x.is_cuda() || !weight.is_cuda() || x.device() != weight.device())
    fail("rms_norm_cuda: x is on ", x.device(), " and weight on ", weight.device(), "; expected one CUDA device");
  if (x.dim() == 0 || weight.dim() != 1 || weight.size(0) != x.size(-1))
    fail("rms_norm_cuda: weight has shape ", weight.sizes(), " for x of shape ", x.sizes(),
         "; expected [", x.dim() == 0 ? 0 : x.size(-1), "]");
  return RmsNormFunction::apply(x, weight, eps);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (use_cuda_kernels(x) && use_cuda_kernels(weight)) return rms_norm_cuda(x, weight, eps);
  return rms_norm_reference(x, weight, eps);
}

}  // namespace strata::kernels
