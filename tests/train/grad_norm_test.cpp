#include "strata/train/grad_norm.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata::train {
namespace {

TEST(SquaredNorms, OnePerTensorWhateverItsDtypeAndLayout) {
  const auto device = strata::testing::test_device();
  auto a = at::tensor({3.0f, 4.0f}).to(device);
  auto b = at::tensor({1.0f, 2.0f, 2.0f}).to(device, at::kBFloat16);
  auto c = at::arange(6, at::kFloat).reshape({2, 3}).to(device).t();  // not contiguous
  auto squares = squared_norms({a, b, c});
  ASSERT_EQ(squares.scalar_type(), at::kDouble);
  ASSERT_EQ(squares.numel(), 3);
  EXPECT_NEAR(squares[0].item<double>(), 25.0, 1e-5);
  EXPECT_NEAR(squares[1].item<double>(), 9.0, 1e-5);
  EXPECT_NEAR(squares[2].item<double>(), 55.0, 1e-4);  // 0 + 1 + 4 + 9 + 16 + 25
  EXPECT_EQ(squares.device().type(), device.type());
  EXPECT_EQ(squared_norms({}).numel(), 0);
}

TEST(ClipGradNorm, ScalesEveryGradientToTheLimit) {
  auto w = at::zeros({2}).requires_grad_(true);
  auto v = at::zeros({1, 1}).requires_grad_(true);
  auto untouched = at::zeros({3}).requires_grad_(true);  // no gradient: skipped
  w.mutable_grad() = at::tensor({3.0f, 4.0f});
  v.mutable_grad() = at::full({1, 1}, 12.0f);
  EXPECT_NEAR(clip_grad_norm({{"w", w}, {"v", v}, {"u", untouched}}, 1.0), 13.0, 1e-5);
  EXPECT_NEAR(w.grad()[1].item<double>(), 4.0 / 13.0, 1e-6);
  EXPECT_NEAR(v.grad().item<double>(), 12.0 / 13.0, 1e-6);
  EXPECT_FALSE(untouched.grad().defined());
}

TEST(ClipGradNorm, LeavesGradientsBelowTheLimitAlone) {
  auto w = at::zeros({2}).requires_grad_(true);
  w.mutable_grad() = at::tensor({0.3f, 0.4f});
  EXPECT_NEAR(clip_grad_norm({{"w", w}}, 1.0), 0.5, 1e-6);
  EXPECT_NEAR(w.grad()[0].item<double>(), 0.3, 1e-7);
  EXPECT_EQ(clip_grad_norm({{"w", at::zeros({1})}}, 1.0), 0.0);
}

}  // namespace
}  // namespace strata::train
