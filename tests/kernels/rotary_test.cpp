// The rotary twin against the pairwise rotation and its transpose written out (anywhere), and
// the CUDA kernel against the twin (on the GPU machine).
#include "strata/kernels/rotary.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/layers/rotary.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::forward_backward;
using testing::relative_error;

// Pair (i, i + R/2) rotates by the position's angle: with c, s the first half of the tables,
// out1 = x1 c - x2 s, out2 = x2 c + x1 s; the gradient is the transposed rotation,
// dx1 = g1 c + g2 s, dx2 = g2 c - g1 s. Dimensions R.. pass through.
TEST(RotaryKernel, ReferenceMatchesThePairRotationAndItsTranspose) {
  const auto device = strata::testing::test_device();
  const int64_t dim = 10, rot = 6, half = 3, seq = 5;
  const auto [cos, sin] = RotaryEmbedding(rot, 10000.0).tables(seq, /*offset=*/2, device);
  auto opts = at::TensorOptions().device(device).dtype(at::kDouble);
  auto x = at::randn({2, seq, 3, dim}, opts);
  auto g = at::randn({2, seq, 3, dim}, opts);
  auto c = cos.narrow(1, 0, half).to(at::kDouble).unsqueeze(1);  // [T, 1, R/2]
  auto s = sin.narrow(1, 0, half).to(at::kDouble).unsqueeze(1);
  auto part = [](const at::Tensor& t, int64_t from, int64_t size) { return t.narrow(-1, from, size); };
  auto x1 = part(x, 0, half), x2 = part(x, half, half), g1 = part(g, 0, half), g2 = part(g, half, half);
  auto y = at::cat({x1 * c - x2 * s, x2 * c + x1 * s, part(x, rot, dim - rot)}, -1);
  auto dx = at::cat({g1 * c + g2 * s, g2 * c - g1 * s, part(g, rot, dim - rot)}, -1);
  auto run = forward_backward(
      [cos = cos, sin = sin](const auto& in) { return apply_rotary_reference(in[0], cos, sin); }, {x}, g);
  EXPECT_LT(relative_error(run.output, y), 1e-12);
  EXPECT_LT(relative_error(run.grads[0], dx), 1e-12);
}

TEST(RotaryKernel, DispatchRunsTheTwinOffCuda) {
  auto [cos, sin] = RotaryEmbedding(8, 10000.0).tables(4, 0, at::kCPU);
  auto x = at::randn({2, 4, 3, 8});
  EXPECT_TRUE(at::equal(apply_rotary(x, cos, sin), apply_rotary_reference(x, cos, sin)));
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

// The kernel, the twin in x's dtype and the twin in float64 on view(x), forward and backward.
void expect_kernel_matches_twin(const at::Tensor& x, int64_t rot, int64_t seq, const std::string& what,
                                const std::function<at::Tensor(const at::Tensor&)>& view = {}) {
  auto input = [&](const at::Tensor& t) { return view ? view(t) : t; };
  const auto tables = RotaryEmbedding(rot, 10000.0).tables(seq, /*offset=*/7, x.device());
  const auto& cos = tables.first;
  const auto& sin = tables.second;
  auto g = at::randn(input(x).sizes(), x.options());
  auto kernel = forward_backward([&](const auto& in) { return apply_rotary_cuda(input(in[0]), cos, sin); }, {x}, g);
  auto twin = forward_backward([&](const auto& in) { return apply_rotary_reference(input(in[0]), cos, sin); }, {x}, g);
  auto ref = forward_backward([&](const auto& in) { return apply_rotary_reference(input(in[0]), cos, sin); },
                              {x.to(at::kDouble)}, g.to(at::kDouble));
  testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " out");
  testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " dx");
}

TEST(RotaryKernel, CudaKernelMatchesReference) {
  ASSERT_TRUE(cuda_kernels_built());
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  const int64_t seq = 33;
  // (head dim, rotary dim): full, partial, odd widths, one head of rotary dims only (MLA's k_pe).
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{64, 64}, {128, 64}, {10, 6}, {80, 32}, {2, 2}};
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (auto [dim, rot] : shapes) {
      auto x = at::randn({2, seq, 5, dim}, at::TensorOptions().device(at::kCUDA).dtype(dtype));
      expect_kernel_matches_twin(x, rot, seq, strata::cat(dtype, " D ", dim, " R ", rot));
    }
    auto k_pe = at::randn({3, seq, 1, 64}, at::TensorOptions().device(at::kCUDA).dtype(dtype));
    expect_kernel_matches_twin(k_pe, 64, seq, strata::cat(dtype, " single head"));
  }
}

TEST(RotaryKernel, CudaKernelTakesKeyHeadsInsideTheQkvProjection) {
  // qkv [B, T, groups, (q_per_group + 2) * D]: the key heads are a strided view.
  const int64_t seq = 40, groups = 4, dim = 64;
  auto qkv = at::randn({2, seq, groups, 4 * dim}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
  expect_kernel_matches_twin(qkv, dim, seq, "key view",
                             [](const at::Tensor& t) { return t.narrow(-1, 2 * dim, dim); });
}

TEST(RotaryKernel, DispatchRunsTheKernelOnCuda) {
  auto [cos, sin] = RotaryEmbedding(8, 10000.0).tables(4, 0, at::kCUDA);
  auto x = at::randn({2, 4, 3, 8}, at::kCUDA);
  EXPECT_TRUE(at::equal(apply_rotary(x, cos, sin), apply_rotary_cuda(x, cos, sin)));
}
#endif

}  // namespace
}  // namespace strata::kernels
