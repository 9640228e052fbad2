#include "strata/kernels/gated_rms_norm.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "strata/core/dtype.h"
#include "strata/core/error.h"

namespace strata::kernels {

at::Tensor gated_rms_norm_reference(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps) {
  // HF's order of casts: normalise in float32, back to x's dtype, then scale and gate (the gate
  // in float32), and the product back to x's dtype.
  auto wide = at_least_float(x);
  auto normed = (wide * at::rsqrt(wide.pow(2).mean(-1, /*keepdim=*/true) + eps)).to(x.scalar_type());
  return (weight * normed * at::silu(at_least_float(gate))).to(x.scalar_type());
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Row chunks of the backward, one block each: at least 64 rows a chunk, at most 1024 chunks
// (a few per SM), none for no rows. A function of the row count only, so that the weight
// gradient's order of sums, and with it the result, is the same on every run.
int64_t backward_blocks(int64_t rows) { return std::min<int64_t>((rows + 63) / 64, 1024); }

// t as the kernels read it, [B, T, H, D] with a contiguous last dimension: a 4-D t keeps its
// strides; other shapes become [rows, 1, 1, D] (a view where the rows are evenly spaced, else
// a copy).
at::Tensor as_rows(const at::Tensor& t) {
  auto rows = t.dim() == 4 ? t : t.reshape({-1, 1, 1, t.size(-1)});
  return rows.stride(3) == 1 ? rows : rows.contiguous();
}

// On x and gate [B, T, H, D] (gate in x's dtype or float32) and a float32 weight [D].
class GatedRmsNormFunction : public torch::autograd::Function<GatedRmsNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight,
                            double eps) {
    auto w = weight.contiguous();
    auto out = at::empty(x.sizes(), x.options());
    auto rstd = at::empty({x.size(0), x.size(1), x.size(2)}, x.options().dtype(at::kFloat));
    c10::DeviceGuard guard(x.device());
    launch::gated_rms_norm_forward(launch_dtype(x.scalar_type(), "gated_rms_norm_cuda: x"),
                                   launch_dtype(gate.scalar_type(), "gated_rms_norm_cuda: gate"), x.data_ptr(),
                                   row_strides(x), gate.data_ptr(), row_strides(gate), w.data_ptr<float>(),
                                   out.data_ptr(), rstd.data_ptr<float>(), x.size(0), x.size(1), x.size(2), x.size(3),
                                   static_cast<float>(eps), current_stream(x.device()));
    ctx->save_for_backward({x, gate, w, rstd});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& gate = saved[1];
    const auto& w = saved[2];
    const auto& rstd = saved[3];
    auto grad_out = grads[0].to(x.scalar_type()).contiguous();
    const auto blocks = backward_blocks(rstd.numel());
    auto grad_x = at::empty(x.sizes(), x.options());
    auto grad_gate = at::empty(gate.sizes(), gate.options());
    auto partial = at::empty({blocks, x.size(3)}, x.options().dtype(at::kFloat));
    c10::DeviceGuard guard(x.device());
    launch::gated_rms_norm_backward(launch_dtype(x.scalar_type(), "gated_rms_norm_cuda: x"),
                                    launch_dtype(gate.scalar_type(), "gated_rms_norm_cuda: gate"), grad_out.data_ptr(),
                                    x.data_ptr(), row_strides(x), gate.data_ptr(), row_strides(gate),
                                    w.data_ptr<float>(), rstd.data_ptr<float>(), grad_x.data_ptr(),
                                    grad_gate.data_ptr(), partial.data_ptr<float>(), blocks, x.size(0), x.size(1),
                                    x.size(2), x.size(3), current_stream(x.device()));
    return {grad_x, grad_gate, partial.sum(0), at::Tensor()};
  }
};

bool kernel_dtype(at::ScalarType type) { return type == at::kFloat || type == at::kBFloat16 || type == at::kHalf; }

bool kernel_shapes(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight) {
  return x.dim() >= 1 && gate.sizes() == x.sizes() && weight.dim() == 1 && weight.size(0) == x.size(-1) &&
         x.size(-1) >= 1 && x.size(-1) <= launch::kMaxGatedRmsNormDim;
}

}  // namespace

at::Tensor gated_rms_norm_cuda(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps) {
  if (!cuda_kernels_built())
    fail("gated_rms_norm_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!x.is_cuda() || gate.device() != x.device() || weight.device() != x.device())
    fail("gated_rms_norm_cuda: x is on ", x.device(), ", gate on ", gate.device(), " and weight on ", weight.device(),
         "; expected one CUDA device");
  if (!kernel_dtype(x.scalar_type()) || !kernel_dtype(gate.scalar_type()) || weight.scalar_type() != at::kFloat)
    fail("gated_rms_norm_cuda: x is ", x.scalar_type(), ", gate ", gate.scalar_type(), " and weight ",
         weight.scalar_type(), "; expected x and gate float32, bfloat16 or float16 and weight float32");
  if (!kernel_shapes(x, gate, weight))
    fail("gated_rms_norm_cuda: x has shape ", x.sizes(), ", gate ", gate.sizes(), " and weight ", weight.sizes(),
         "; expected x and gate of one shape [..., D] with D in 1..", launch::kMaxGatedRmsNormDim, " and weight [D]");
  // The kernels take a gate in x's dtype or float32; widening another one to float32 is exact
  // (the math is float32 anyway) and autograd rounds its gradient back to gate's dtype.
  auto wide_gate = gate.scalar_type() == x.scalar_type() ? gate : gate.to(at::kFloat);
  return GatedRmsNormFunction::apply(as_rows(x), as_rows(wide_gate), weight, eps).view(x.sizes());
}

at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight, double eps) {
  if (use_cuda_kernels(x) && kernel_dtype(gate.scalar_type()) && weight.scalar_type() == at::kFloat &&
      gate.device() == x.device() && weight.device() == x.device() && kernel_shapes(x, gate, weight))
    return gated_rms_norm_cuda(x, gate, weight, eps);
  return gated_rms_norm_reference(x, gate, weight, eps);
}

}  // namespace strata::kernels
