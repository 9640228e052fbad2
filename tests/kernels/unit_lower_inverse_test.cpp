// The unit lower-triangular inverse: the twin against the identities that define it and the
// hand-derived gradient (anywhere), the dispatch and the CUDA entry point's errors, and the CUDA
// kernel against the twin (on the GPU machine).
#include "strata/kernels/unit_lower_inverse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::forward_backward;
using testing::relative_error;

// Matrices like the delta rule's coupling (strictly lower entries of ~0.1-1, as beta * decay * k.k
// of unit keys gives), with junk on and above the diagonal, which must not be read.
at::Tensor coupling_like(std::vector<int64_t> leading, int64_t c, const at::TensorOptions& opts) {
  leading.insert(leading.end(), {c, c});
  return 0.3 * at::randn(leading, opts) + 5 * at::randn(leading, opts).triu(0);
}

void expect_unit_lower_triangular(const at::Tensor& t, const std::string& what) {
  EXPECT_TRUE(at::equal(t.triu(1), at::zeros_like(t))) << what << ": nonzero above the diagonal";
  EXPECT_TRUE(at::equal(t.diagonal(0, -2, -1), at::ones_like(t.diagonal(0, -2, -1)))) << what << ": diagonal";
}

// (I + L) T = I for L = tril(A, -1); dT = -T dM T gives grad_A = tril(-T^T G T^T, -1).
TEST(UnitLowerInverse, ReferenceInvertsTheUnitLowerPartAndMatchesTheGradientFormula) {
  auto opts = at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
  for (int64_t c : {1, 5, 64}) {
    const auto what = strata::cat("C ", c);
    auto a = coupling_like({2, 3}, c, opts);
    auto g = at::randn({2, 3, c, c}, opts);
    auto run = forward_backward([](const auto& in) { return unit_lower_inverse_reference(in[0]); }, {a}, g);
    const auto& t = run.output;
    auto identity = at::eye(c, opts);
    auto m = identity + a.tril(-1);
    EXPECT_LT((at::matmul(m, t) - identity).abs().max().item<double>(), 1e-10) << what;
    expect_unit_lower_triangular(t, what);
    EXPECT_TRUE(at::equal(t, unit_lower_inverse_reference(a.tril(-1))))
        << what << ": read outside the strictly lower triangle";

    auto expected = (-at::matmul(t.mT(), at::matmul(g, t.mT()))).tril(-1);
    EXPECT_LT(relative_error(run.grads[0], expected), 1e-10) << what;
    EXPECT_TRUE(at::equal(run.grads[0].triu(0), at::zeros_like(a))) << what << ": gradient on or above the diagonal";
  }
}

TEST(UnitLowerInverse, DispatchRunsTheTwinOffCuda) {
  auto a = coupling_like({4}, 16, at::TensorOptions());
  EXPECT_TRUE(at::equal(unit_lower_inverse(a), unit_lower_inverse_reference(a)));
}

TEST(UnitLowerInverse, RefusesNonSquareMatricesAndCpuTensorsByName) {
  const auto message = strata::testing::error_of([] { unit_lower_inverse(at::zeros({2, 3, 4})); });
  EXPECT_NE(message.find("unit_lower_inverse: a has shape [2, 3, 4]; expected [..., C, C]"), std::string::npos)
      << message;
  // A CPU-only build says the kernels are missing; a CUDA build names the CPU tensor.
  const auto cuda_message = strata::testing::error_of([] { unit_lower_inverse_cuda(at::zeros({3, 3})); });
  EXPECT_NE(cuda_message.find("unit_lower_inverse_cuda"), std::string::npos) << cuda_message;
  EXPECT_TRUE(cuda_message.find("no CUDA kernels") != std::string::npos ||
              cuda_message.find("expected a CUDA tensor") != std::string::npos)
      << cuda_message;
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

TEST(UnitLowerInverse, CudaKernelMatchesReference) {
  ASSERT_TRUE(cuda_kernels_built());
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  // Sizes below, at and between the kernel's compiled sizes (32, 64, 128).
  for (int64_t c : {1, 5, 16, 64, 100, 128}) {
    const auto what = strata::cat("C ", c);
    auto a = coupling_like({2, 3, 4}, c, opts);
    auto g = at::randn({2, 3, 4, c, c}, opts);
    auto kernel = forward_backward([](const auto& in) { return unit_lower_inverse_cuda(in[0]); }, {a}, g);
    auto twin = forward_backward([](const auto& in) { return unit_lower_inverse_reference(in[0]); }, {a}, g);
    auto ref = forward_backward([](const auto& in) { return unit_lower_inverse_reference(in[0]); },
                                {a.to(at::kDouble)}, g.to(at::kDouble));
    testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " T");
    testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " grad");
    expect_unit_lower_triangular(kernel.output, what);
    EXPECT_TRUE(at::equal(kernel.grads[0].triu(0), at::zeros_like(a))) << what << ": gradient on or above the diagonal";
  }
}

TEST(UnitLowerInverse, CudaKernelTakesStridedInputAndNoMatrices) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  auto a = coupling_like({3, 2}, 64, opts).transpose(0, 1);
  EXPECT_TRUE(at::equal(unit_lower_inverse_cuda(a), unit_lower_inverse_cuda(a.contiguous())));
  EXPECT_LT(relative_error(unit_lower_inverse_cuda(a), unit_lower_inverse_reference(a.to(at::kDouble))), 1e-5);
  EXPECT_EQ(unit_lower_inverse_cuda(at::zeros({0, 64, 64}, opts)).sizes(), (at::IntArrayRef{0, 64, 64}));
}

TEST(UnitLowerInverse, DispatchRunsTheKernelOnCudaFloat32UpToTheLargestSize) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  auto a = coupling_like({5}, 64, opts);
  EXPECT_TRUE(at::equal(unit_lower_inverse(a), unit_lower_inverse_cuda(a)));
  auto large = coupling_like({2}, launch::kMaxUnitLowerInverseSize + 1, opts);
  EXPECT_TRUE(at::equal(unit_lower_inverse(large), unit_lower_inverse_reference(large)));
  auto float64 = a.to(at::kDouble);
  EXPECT_TRUE(at::equal(unit_lower_inverse(float64), unit_lower_inverse_reference(float64)));
}
#endif

}  // namespace
}  // namespace strata::kernels
