// The RMSNorm twin against the layer and against the formula and its hand-derived gradients
// (anywhere), and the CUDA kernels against the twin (on the GPU machine).
#include "strata/kernels/rms_norm.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/layers/norm.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::forward_backward;
using testing::relative_error;

TEST(RmsNormKernel, ReferenceIsTheLayersArithmetic) {
  auto config = strata::testing::small_config();
  RMSNorm layer(NormArgs{config, 32, 1e-6});
  auto device = strata::testing::test_device();
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    layer.to(device, dtype);
    {
      at::NoGradGuard no_grad;
      layer.named_parameters()["weight"].normal_(1.0, 0.1);
    }
    auto x = at::randn({3, 5, 32}, at::TensorOptions().device(device).dtype(dtype));
    EXPECT_TRUE(at::equal(rms_norm_reference(x, layer.named_parameters()["weight"], 1e-6), layer.forward(x))) << dtype;
  }
}

// y = x / sqrt(mean(x^2) + eps) * w, in float64 whatever x's dtype (the twin computes in float32).
at::Tensor rms_norm_float64(const at::Tensor& x, const at::Tensor& w, double eps) {
  auto x64 = x.to(at::kDouble);
  return x64 / ((x64 * x64).sum(-1, /*keepdim=*/true) / static_cast<double>(x.size(-1)) + eps).sqrt() *
         w.to(at::kDouble);
}

// With r = 1 / sqrt(mean(x^2) + eps) and g = dL/dy: dx = r * (g w - x r^2 mean(g w x)), and
// dw = sum over rows of g x r.
TEST(RmsNormKernel, ReferenceMatchesTheFormulaAndItsGradients) {
  auto opts = at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
  const double eps = 1e-5;
  auto x = at::randn({4, 3, 11}, opts) * 2;
  auto w = at::randn({11}, opts);
  auto g = at::randn({4, 3, 11}, opts);
  auto r = 1.0 / ((x * x).sum(-1, /*keepdim=*/true) / 11.0 + eps).sqrt();
  auto dx = r * (g * w - x * r * r * (g * w * x).sum(-1, true) / 11.0);
  auto dw = (g * x * r).sum(at::IntArrayRef{0, 1});
  auto run = forward_backward([&](const auto& in) { return rms_norm_reference(in[0], in[1], eps); },
                              {x.to(at::kFloat), w.to(at::kFloat)}, g);
  EXPECT_LT(relative_error(run.output, rms_norm_float64(x, w, eps)), 1e-6);
  EXPECT_LT(relative_error(run.grads[0], dx), 1e-6);
  EXPECT_LT(relative_error(run.grads[1], dw), 1e-6);
}

TEST(RmsNormKernel, DispatchRunsTheTwinOffCuda) {
  auto x = at::randn({6, 16});
  auto w = at::randn({16});
  EXPECT_FALSE(use_cuda_kernels(x));
  EXPECT_TRUE(at::equal(rms_norm(x, w, 1e-6), rms_norm_reference(x, w, 1e-6)));
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

// The kernel, the twin in the same dtypes and the formula in float64, forward and backward, on
// view(x): x itself or a strided view of it.
void expect_kernel_matches_twin(const at::Tensor& x, const at::Tensor& w, const std::string& what,
                                const std::function<at::Tensor(const at::Tensor&)>& view = {}) {
  const double eps = 1e-5;
  auto input = [&](const at::Tensor& t) { return view ? view(t) : t; };
  const auto out_type = at::promote_types(x.scalar_type(), w.scalar_type());
  auto g = at::randn(input(x).sizes(), x.options().dtype(out_type));
  auto kernel =
      forward_backward([&](const auto& in) { return rms_norm_cuda(input(in[0]), in[1], eps); }, {x, w}, g);
  auto twin =
      forward_backward([&](const auto& in) { return rms_norm_reference(input(in[0]), in[1], eps); }, {x, w}, g);
  auto ref = forward_backward([&](const auto& in) { return rms_norm_float64(input(in[0]), in[1], eps); },
                              {x.to(at::kDouble), w.to(at::kDouble)}, g.to(at::kDouble));
  EXPECT_EQ(kernel.output.scalar_type(), out_type) << what;
  testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " y");
  testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " dx");
  testing::expect_as_accurate_as_twin(kernel.grads[1], twin.grads[1], ref.grads[1], what + " dw");
}

TEST(RmsNormKernel, CudaKernelMatchesReference) {
  ASSERT_TRUE(cuda_kernels_built());
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (int64_t cols : {7, 64, 128, 1000, 1024, 4096}) {
      auto opts = at::TensorOptions().device(at::kCUDA).dtype(dtype);
      // Many rows, so the weight gradient spans several row chunks.
      auto x = at::randn({3, 37, cols}, opts) * 3;
      auto w = 1 + 0.1 * at::randn({cols}, opts);
      expect_kernel_matches_twin(x, w, strata::cat(dtype, " cols ", cols));
    }
  }
}

TEST(RmsNormKernel, CudaKernelPromotesToAFloat32Weight) {
  // q/k norms under bf16 autocast: bf16 heads, float32 weight, float32 output.
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    auto x = at::randn({5, 9, 4, 128}, at::TensorOptions().device(at::kCUDA).dtype(dtype));
    auto w = 1 + 0.1 * at::randn({128}, at::TensorOptions().device(at::kCUDA));
    expect_kernel_matches_twin(x, w, strata::cat(dtype, " with a float32 weight"));
  }
}

TEST(RmsNormKernel, CudaKernelTakesStridedInputAndManyRows) {
  auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto x = at::randn({64, 300, 96}, opts);
  auto w = at::randn({64}, opts);
  // Rows of 64 inside rows of 96, as the key heads sit inside the fused qkv projection.
  expect_kernel_matches_twin(x, w, "strided bf16", [](const at::Tensor& t) { return t.narrow(2, 8, 64); });
}

TEST(RmsNormKernel, CudaWeightGradientIsDeterministic) {
  auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto x = at::randn({8192, 1024}, opts);
  auto w = at::randn({1024}, opts);
  auto g = at::randn({8192, 1024}, opts);
  auto first = forward_backward([&](const auto& in) { return rms_norm_cuda(in[0], in[1], 1e-6); }, {x, w}, g);
  auto second = forward_backward([&](const auto& in) { return rms_norm_cuda(in[0], in[1], 1e-6); }, {x, w}, g);
  EXPECT_TRUE(at::equal(first.grads[0], second.grads[0]));
  EXPECT_TRUE(at::equal(first.grads[1], second.grads[1]));
}

TEST(RmsNormKernel, CudaWeightGradientOfNoRowsIsZero) {
  auto x = at::randn({0, 64}, at::kCUDA);
  auto w = at::randn({64}, at::kCUDA);
  auto run = forward_backward([&](const auto& in) { return rms_norm_cuda(in[0], in[1], 1e-6); }, {x, w},
                              at::empty({0, 64}, at::kCUDA));
  EXPECT_EQ(run.output.sizes(), x.sizes());
  EXPECT_TRUE(at::equal(run.grads[1], at::zeros({64}, at::kCUDA)));
}

TEST(RmsNormKernel, DispatchRunsTheKernelOnCuda) {
  auto x = at::randn({6, 16}, at::kCUDA);
  auto w = at::randn({16}, at::kCUDA);
  EXPECT_TRUE(use_cuda_kernels(x));
  EXPECT_TRUE(at::equal(rms_norm(x, w, 1e-6), rms_norm_cuda(x, w, 1e-6)));
}
#endif

}  // namespace
}  // namespace strata::kernels
