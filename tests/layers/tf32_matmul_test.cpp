// tf32_matmul: the product and both gradients against float64 (exact off CUDA, within TF32's
// rounding on CUDA), the switch restored, and its shape errors.
#include "strata/layers/tf32_matmul.h"

#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "test_util.h"

namespace strata {
namespace {

double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  return ((actual.to(at::kDouble) - expected.to(at::kDouble)).norm() / expected.to(at::kDouble).norm()).item<double>();
}

TEST(Tf32Matmul, MatchesFloat64ProductAndGradients) {
  const auto device = testing::test_device();
  // TF32 keeps 10 mantissa bits: a product's relative error is a few 2^-11 (4.9e-4) at most.
  const double tolerance = device.is_cuda() ? 2e-3 : 1e-6;
  const bool tf32_before = at::globalContext().allowTF32CuBLAS();
  auto a = at::randn({2, 3, 17, 40}, at::TensorOptions().device(device)).requires_grad_(true);
  auto b = at::randn({2, 3, 40, 9}, at::TensorOptions().device(device)).requires_grad_(true);
  auto a64 = a.detach().to(at::kDouble).requires_grad_(true);
  auto b64 = b.detach().to(at::kDouble).requires_grad_(true);
  auto out = tf32_matmul(a, b);
  auto expected = at::matmul(a64, b64);
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_LT(relative_error(out, expected), tolerance);
  auto weight = at::randn(expected.sizes(), expected.options());
  auto grads = torch::autograd::grad({(out.to(at::kDouble) * weight).sum()}, {a, b});
  auto expected_grads = torch::autograd::grad({(expected * weight).sum()}, {a64, b64});
  EXPECT_LT(relative_error(grads[0], expected_grads[0]), tolerance);
  EXPECT_LT(relative_error(grads[1], expected_grads[1]), tolerance);
  EXPECT_EQ(at::globalContext().allowTF32CuBLAS(), tf32_before);
}

TEST(Tf32Matmul, RejectsBroadcastingMismatchedAndNonFloat32Operands) {
  auto a = at::randn({2, 4, 5});
  EXPECT_NE(testing::error_of([&] { tf32_matmul(a, at::randn({1, 5, 3})); }).find("same batch dimensions"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { tf32_matmul(a, at::randn({2, 4, 3})); }).find("[..., K, N]"), std::string::npos);
  EXPECT_NE(testing::error_of([&] { tf32_matmul(a.to(at::kDouble), at::randn({2, 5, 3}).to(at::kDouble)); })
                .find("expected float32"),
            std::string::npos);
}

}  // namespace
}  // namespace strata
