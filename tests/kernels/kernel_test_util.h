#pragma once
// What the kernel tests share: relative errors against a float64 reference, the error each dtype
// may add, and the check that a kernel is about as accurate as its LibTorch twin.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace strata::kernels::testing {

// ||got - ref|| / ||ref|| in float64 (absolute when ref is all zeros).
inline double relative_error(const at::Tensor& got, const at::Tensor& ref) {
  auto g = got.to(at::kDouble).cpu();
  auto r = ref.to(at::kDouble).cpu();
  const double scale = r.norm().item<double>();
  return (g - r).norm().item<double>() / (scale > 0 ? scale : 1.0);
}

// The relative error a result stored in `dtype` may have regardless of how it was computed: a
// few units of its rounding (bf16 keeps 8 significant bits, fp16 11), and for float32 the
// accumulated float32 error of row sums.
inline double dtype_tolerance(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16: return 1e-2;
    case at::kHalf: return 2e-3;
    default: return 1e-5;
  }
}

// A kernel result must be finite and as close to the float64 reference as the twin in the same
// dtype is (with slack), or within the tolerance of `precision`: the dtype the result was held in
// on its way, which is the stored dtype unless the op rounds through a narrower one (a float32
// weight's gradient computed against the weight cast to bfloat16 carries bfloat16 rounding).
inline void expect_as_accurate_as_twin(const at::Tensor& kernel, const at::Tensor& twin, const at::Tensor& reference,
                                       const std::string& what, std::optional<at::ScalarType> precision = {}) {
  ASSERT_EQ(kernel.sizes(), reference.sizes()) << what;
  EXPECT_EQ(kernel.scalar_type(), twin.scalar_type()) << what;
  EXPECT_TRUE(at::isfinite(kernel).all().item<bool>()) << what << ": non-finite values";
  const double kernel_error = relative_error(kernel, reference);
  const double twin_error = relative_error(twin, reference);
  EXPECT_LE(kernel_error, std::max(1.5 * twin_error, dtype_tolerance(precision.value_or(kernel.scalar_type()))))
      << what << ": kernel error " << kernel_error << ", twin error " << twin_error;
}

// An op's output and the gradients of its floating-point inputs for a given output gradient.
struct ForwardBackward {
  at::Tensor output;
  std::vector<at::Tensor> grads;  // one per input; undefined for integer inputs
};

// Runs op on fresh leaves made from `inputs` (floating ones require grad) and backpropagates
// grad_output (moved to the output's device and dtype).
inline ForwardBackward forward_backward(const std::function<at::Tensor(const std::vector<at::Tensor>&)>& op,
                                        const std::vector<at::Tensor>& inputs, const at::Tensor& grad_output) {
  std::vector<at::Tensor> leaves;
  for (const auto& input : inputs) {
    auto leaf = input.detach().clone();
    if (leaf.is_floating_point()) leaf.requires_grad_(true);
    leaves.push_back(leaf);
  }
  ForwardBackward result;
  result.output = op(leaves);
  result.output.backward(grad_output.to(result.output.device(), result.output.scalar_type()));
  for (const auto& leaf : leaves) result.grads.push_back(leaf.is_floating_point() ? leaf.grad() : at::Tensor());
  return result;
}

}  // namespace strata::kernels::testing
