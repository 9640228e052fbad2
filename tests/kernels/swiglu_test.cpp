// The SwiGLU twin against the formula and its hand-derived gradient (anywhere), and the CUDA
// kernels against the twin (on the GPU machine).
#include "strata/kernels/swiglu.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::forward_backward;
using testing::relative_error;

// out = a sigmoid(a) b for gate a and up b; d/da = g b sigmoid(a) (1 + a (1 - sigmoid(a))),
// d/db = g a sigmoid(a).
TEST(SwiGluKernel, ReferenceMatchesTheFormulaAndItsGradient) {
  auto opts = at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
  auto a = at::randn({3, 4, 9}, opts) * 3;
  auto b = at::randn({3, 4, 9}, opts);
  auto g = at::randn({3, 4, 9}, opts);
  auto sig = 1.0 / (1.0 + at::exp(-a));
  auto out = a * sig * b;
  auto d_gate = g * b * sig * (1.0 + a * (1.0 - sig));
  auto d_up = g * a * sig;
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const double tolerance = dtype == at::kDouble ? 1e-12 : 1e-6;
    auto run = forward_backward([](const auto& in) { return swiglu_reference(in[0]); }, {at::cat({a, b}, -1).to(dtype)}, g);
    EXPECT_LT(relative_error(run.output, out), tolerance) << dtype;
    EXPECT_LT(relative_error(run.grads[0], at::cat({d_gate, d_up}, -1)), tolerance) << dtype;
  }
}

TEST(SwiGluKernel, DispatchRunsTheTwinOffCuda) {
  auto h = at::randn({5, 12});
  EXPECT_TRUE(at::equal(swiglu(h), swiglu_reference(h)));
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

TEST(SwiGluKernel, CudaKernelMatchesReference) {
  ASSERT_TRUE(cuda_kernels_built());
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // Odd widths take the one-element path, multiples of 8 the 16-byte one.
    for (int64_t cols : {1, 7, 64, 1000, 2816}) {
      auto h = at::randn({3, 41, 2 * cols}, at::TensorOptions().device(at::kCUDA).dtype(dtype)) * 2;
      auto g = at::randn({3, 41, cols}, h.options());
      auto kernel = forward_backward([](const auto& in) { return swiglu_cuda(in[0]); }, {h}, g);
      auto twin = forward_backward([](const auto& in) { return swiglu_reference(in[0]); }, {h}, g);
      auto ref = forward_backward([](const auto& in) { return swiglu_reference(in[0]); }, {h.to(at::kDouble)},
                                  g.to(at::kDouble));
      const auto what = strata::cat(dtype, " cols ", cols);
      testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " out");
      testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " grad");
    }
  }
}

TEST(SwiGluKernel, DispatchRunsTheKernelOnCuda) {
  auto h = at::randn({5, 16}, at::kCUDA);
  EXPECT_TRUE(at::equal(swiglu(h), swiglu_cuda(h)));
}
#endif

}  // namespace
}  // namespace strata::kernels
