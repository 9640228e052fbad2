#include "strata/kernels/rotary.h"

#include <c10/core/DeviceGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "strata/core/error.h"

namespace strata::kernels {

at::Tensor apply_rotary_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const auto rot = cos.size(-1);
  if (rot == 0) return x;
  auto c = cos.to(x.scalar_type()).unsqueeze(1);  // [T, 1, R] broadcasts over heads
  auto s = sin.to(x.scalar_type()).unsqueeze(1);
  auto x_rot = x.narrow(-1, 0, rot);
  auto halves = x_rot.chunk(2, -1);
  auto rotated_half = at::cat({-halves[1], halves[0]}, -1);
  auto out = x_rot * c + rotated_half * s;
  if (rot == x.size(-1)) return out;
  return at::cat({out, x.narrow(-1, rot, x.size(-1) - rot)}, -1);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The kernel on x [B, T, H, D] (any strides but a contiguous last dimension); returns a
// contiguous [B, T, H, D]. inverse: x is an output gradient, the result the input gradient.
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool inverse) {
  auto xs = x.stride(3) == 1 ? x : x.contiguous();
  auto out = at::empty(xs.sizes(), xs.options());
  c10::DeviceGuard guard(x.device());
  launch::rotary(launch_dtype(x.scalar_type(), "apply_rotary_cuda: x"), xs.data_ptr(), xs.stride(0), xs.stride(1),
                 xs.stride(2), cos.data_ptr<float>(), sin.data_ptr<float>(), out.data_ptr(), xs.size(0), xs.size(1),
                 xs.size(2), xs.size(3), cos.size(1), inverse, current_stream(x.device()));
  return out;
}

class RotaryFunction : public torch::autograd::Function<RotaryFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    auto c = cos.to(at::kFloat).contiguous();
    auto s = sin.to(at::kFloat).contiguous();
    ctx->save_for_backward({c, s});
    return rotate(x, c, s, /*inverse=*/false);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {rotate(grads[0], saved[0], saved[1], /*inverse=*/true), at::Tensor(), at::Tensor()};
  }
};

// Whether the kernel takes these shapes: x [B, T, H, D], tables [T, R] with R even and <= D, all
// on x's device.
bool kernel_shapes(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return x.dim() == 4 && cos.dim() == 2 && cos.sizes() == sin.sizes() && cos.size(0) == x.size(1) &&
         cos.size(1) <= x.size(3) && cos.size(1) % 2 == 0 && cos.device() == x.device() &&
         sin.device() == x.device();
}

}  // namespace

at::Tensor apply_rotary_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (!cuda_kernels_built())
    fail("apply_rotary_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!x.is_cuda()) fail("apply_rotary_cuda: x is on ", x.device(), "; expected a CUDA tensor");
  if (!kernel_shapes(x, cos, sin))
    fail("apply_rotary_cuda: x ", x.sizes(), " on ", x.device(), " with tables ", cos.sizes(), " / ", sin.sizes(),
         " on ", cos.device(), "; expected x [B, T, heads, D] and tables [T, R] on its device, R even and <= D");
  return RotaryFunction::apply(x, cos, sin);
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (cos.size(-1) == 0) return x;
  if (use_cuda_kernels(x) && kernel_shapes(x, cos, sin)) return apply_rotary_cuda(x, cos, sin);
  return apply_rotary_reference(x, cos, sin);
}

}  // namespace strata::kernels
