// The mHC stream ops: twins against hand-derived formulas (anywhere), the dispatch, the CUDA
// entry points' errors, and the CUDA kernels against the twins (on the GPU machine).
#include "strata/kernels/hyper_connection.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/kernels/launch.h"
#include "strata/kernels/sinkhorn.h"
#include "strata/layers/sinkhorn.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::forward_backward;
using testing::relative_error;

at::TensorOptions float64_options() {
  return at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
}

// f = r x W^T with r = 1 / sqrt(mean(x^2) + eps): df -> dx = r df W - x r^3 / D sum(df (x W^T)),
// dW = (r df)^T x.
TEST(HcProjectKernel, ReferenceMatchesTheFormulaAndItsGradients) {
  const double eps = 1e-6;
  const int64_t d = 20, m = 6;
  auto x = at::randn({2, 3, d}, float64_options()) * 3;
  auto w = at::randn({m, d}, float64_options());
  auto g = at::randn({2, 3, m}, float64_options());
  auto r = 1.0 / ((x * x).mean(-1, /*keepdim=*/true) + eps).sqrt();
  auto raw = at::matmul(x, w.t());
  auto dx = r * at::matmul(g, w) - x * r.pow(3) / static_cast<double>(d) * (g * raw).sum(-1, true);
  auto dw = at::matmul((r * g).reshape({-1, m}).t(), x.reshape({-1, d}));
  auto run = forward_backward([&](const auto& in) { return hc_project_reference(in[0], in[1], eps); },
                              {x.to(at::kFloat), w.to(at::kFloat)}, g);
  EXPECT_EQ(run.output.scalar_type(), at::kFloat);
  EXPECT_LT(relative_error(run.output, r * raw), 1e-6);
  EXPECT_LT(relative_error(run.grads[0], dx), 1e-5);
  EXPECT_LT(relative_error(run.grads[1], dw), 1e-5);
}

// out[t, k, h] = sum_j res[t, j, k] streams[t, j, h] + post[t, k] branch[t, h], written as loops.
TEST(HcCombineKernel, ReferenceIsTheTransposedMixPlusTheWeightedBranch) {
  const int64_t tokens = 3, n = 3, hidden = 5;
  auto streams = at::randn({1, tokens, n, hidden}, float64_options());
  auto branch = at::randn({1, tokens, hidden}, float64_options());
  auto post = at::rand({1, tokens, n}, float64_options());
  auto res = at::rand({1, tokens, n, n}, float64_options());
  auto out = hc_combine_reference(streams, branch, post, res);
  auto s = streams.cpu(), b = branch.cpu(), p = post.cpu(), r = res.cpu(), o = out.cpu();
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t h = 0; h < hidden; ++h) {
        double expected = p[0][t][k].item<double>() * b[0][t][h].item<double>();
        for (int64_t j = 0; j < n; ++j) expected += r[0][t][j][k].item<double>() * s[0][t][j][h].item<double>();
        EXPECT_NEAR(o[0][t][k][h].item<double>(), expected, 1e-12) << t << " " << k << " " << h;
      }
}

TEST(HcCollapseKernel, ReferenceIsTheWeightedSumInTheStreamsDtype) {
  auto streams = at::randn({2, 3, 4, 6}).to(at::kBFloat16);
  auto weights = at::rand({2, 3, 4});
  auto out = hc_collapse_reference(streams, weights);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  auto expected = (weights.unsqueeze(-1).to(at::kDouble) * streams.to(at::kDouble)).sum(2);
  EXPECT_LT(relative_error(out, expected), 1e-2);
}

TEST(HcKernels, DispatchRunsTheTwinsOffCuda) {
  auto streams = at::randn({2, 3, 4, 8});
  auto weights = at::rand({2, 3, 4});
  auto branch = at::randn({2, 3, 8});
  auto res = at::rand({2, 3, 4, 4});
  auto fn = at::randn({24, 32});
  EXPECT_TRUE(at::equal(hc_project(streams.flatten(2), fn, 1e-6), hc_project_reference(streams.flatten(2), fn, 1e-6)));
  EXPECT_TRUE(at::equal(hc_collapse(streams, weights), hc_collapse_reference(streams, weights)));
  EXPECT_TRUE(at::equal(hc_combine(streams, branch, weights, res), hc_combine_reference(streams, branch, weights, res)));
  EXPECT_FALSE(sinkhorn_kernel_applies(res));
}

TEST(HcKernels, CudaEntryPointsRefuseCpuTensorsByName) {
  auto streams = at::randn({2, 3, 4, 8});
  auto weights = at::rand({2, 3, 4});
  // A CPU-only build says the kernels are missing; a CUDA build names the CPU tensor.
  auto expect_error = [](const std::function<void()>& call, const std::string& who) {
    try {
      call();
      ADD_FAILURE() << who << " accepted CPU tensors";
    } catch (const std::exception& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(who), std::string::npos) << message;
      EXPECT_TRUE(message.find("no CUDA kernels") != std::string::npos ||
                  message.find("expected a CUDA tensor") != std::string::npos)
          << message;
    }
  };
  expect_error([&] { hc_collapse_cuda(streams, weights); }, "hc_collapse_cuda");
  expect_error([&] { hc_project_cuda(streams.flatten(2), at::randn({24, 32}), 1e-6); }, "hc_project_cuda");
  expect_error([&] { sinkhorn_cuda(at::randn({3, 4, 4}), 5, 1e-6); }, "sinkhorn_cuda");
  expect_error([&] { hc_combine_cuda(streams, streams.select(2, 0), weights, at::rand({2, 3, 4, 4})); },
               "hc_combine_cuda");
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

at::TensorOptions cuda(at::ScalarType dtype) { return at::TensorOptions().device(at::kCUDA).dtype(dtype); }

std::vector<at::Tensor> as_float64(const std::vector<at::Tensor>& inputs) {
  std::vector<at::Tensor> out;
  for (const auto& t : inputs) out.push_back(t.to(at::kDouble));
  return out;
}

// The kernel's output and logits gradient against the twin's, both against float64.
void expect_sinkhorn_kernel_as_accurate_as_twin(const at::Tensor& logits, int64_t iters, double eps,
                                                const std::string& what) {
  auto g = at::randn_like(logits);
  auto kernel = forward_backward([&](const auto& in) { return sinkhorn_cuda(in[0], iters, eps); }, {logits}, g);
  auto twin = forward_backward([&](const auto& in) { return sinkhorn_knopp_unrolled(in[0], iters, eps); }, {logits}, g);
  auto ref = forward_backward([&](const auto& in) { return sinkhorn_knopp_unrolled(in[0], iters, eps); },
                              {logits.to(at::kDouble)}, g.to(at::kDouble));
  testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " out");
  testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " grad");
}

// Every n the kernel takes: non-powers of two leave lanes of each matrix's group idle; 1, 185 and
// 4099 matrices fill no block of 128 lanes exactly (a block holds 128 / n matrices, n rounded up
// to a power of two), so the last block's spare lanes still shuffle with the others.
TEST(SinkhornKernel, CudaKernelMatchesReference) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  for (int64_t n = 1; n <= launch::kMaxHyperStreams; ++n)
    for (const std::vector<int64_t>& batch : {std::vector<int64_t>{1}, {5, 37}, {4099}})
      for (int64_t iters : {1, 2, 3, 20}) {
        auto shape = batch;
        shape.insert(shape.end(), {n, n});
        auto logits = at::randn(shape, cuda(at::kFloat)) * 2;
        expect_sinkhorn_kernel_as_accurate_as_twin(logits, iters, 1e-6,
                                                   strata::cat("n ", n, " batch ", at::IntArrayRef(batch), " iters ", iters));
      }
}

// 150 iterations are more checkpoints than a block's shared memory holds at these n, so the
// backward keeps them in the global scratch; with eps = 0 too, which the twin also takes.
TEST(SinkhornKernel, LongRunsKeepTheirCheckpointsInTheGlobalScratch) {
  const int64_t iters = 150;
  for (int64_t n : {3, 4, 5, 8}) {
    EXPECT_GT(launch::sinkhorn_scratch_floats(1, n, iters), 0) << "n " << n << ": the tape fits in shared memory";
    for (double eps : {1e-6, 0.0}) {
      auto logits = at::randn({333, n, n}, cuda(at::kFloat)) * 2;
      expect_sinkhorn_kernel_as_accurate_as_twin(logits, iters, eps, strata::cat("n ", n, " eps ", eps));
    }
  }
  EXPECT_EQ(launch::sinkhorn_scratch_floats(16384, 4, 20), 0) << "mHC's n = 4, 20 iterations: shared memory";
}

TEST(SinkhornKernel, LayerOpRunsTheKernelOnFloat32Cuda) {
  auto logits = at::randn({4, 6, 4, 4}, cuda(at::kFloat));
  EXPECT_TRUE(sinkhorn_kernel_applies(logits));
  EXPECT_TRUE(at::equal(sinkhorn_knopp(logits, 20, 1e-6), sinkhorn_cuda(logits, 20, 1e-6)));
  EXPECT_FALSE(sinkhorn_kernel_applies(at::randn({2, 9, 9}, cuda(at::kFloat))));  // n > 8: the twin
}

// The products run in the input's dtype, so its error is that dtype's. 24 and 80
// maps are the layers' for n = 4 and 8, 4 the head's for n = 4.
TEST(HcProjectKernel, CudaKernelMatchesReference) {
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf})
    for (int64_t maps : {24, 80, 4})
      for (int64_t d : {7, 200, 4096}) {
        auto flat = (at::randn({3, 41, d}, cuda(at::kFloat)) * 2).to(dtype);
        auto fn = at::randn({maps, d}, cuda(at::kFloat)) * 0.05;
        auto g = at::randn({3, 41, maps}, cuda(at::kFloat));
        auto op_kernel = [](const auto& in) { return hc_project_cuda(in[0], in[1], 1e-6); };
        auto op_twin = [](const auto& in) { return hc_project_reference(in[0], in[1], 1e-6); };
        auto kernel = forward_backward(op_kernel, {flat, fn}, g);
        auto twin = forward_backward(op_twin, {flat, fn}, g);
        auto ref = forward_backward(op_twin, as_float64({flat, fn}), g.to(at::kDouble));
        const auto what = strata::cat(dtype, " maps ", maps, " D ", d);
        EXPECT_EQ(kernel.output.scalar_type(), at::kFloat) << what;
        EXPECT_EQ(kernel.grads[0].scalar_type(), dtype) << what;
        const std::vector<std::tuple<std::string, at::Tensor, at::Tensor, at::Tensor>> results = {
            {"f", kernel.output, twin.output, ref.output},
            {"d flat", kernel.grads[0], twin.grads[0], ref.grads[0]},
            {"d fn", kernel.grads[1], twin.grads[1], ref.grads[1]}};
        for (const auto& [name, got, twin_result, expected] : results)
          EXPECT_LE(relative_error(got, expected),
                    std::max(1.5 * relative_error(twin_result, expected), testing::dtype_tolerance(dtype)))
              << what << " " << name;
      }
}

TEST(HcCollapseKernel, CudaKernelMatchesReference) {
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf})
    for (int64_t n : {1, 3, 4, 8})
      for (int64_t hidden : {1, 7, 1024}) {
        auto streams = at::randn({2, 19, n, hidden}, cuda(at::kFloat)).to(dtype);
        auto weights = at::rand({2, 19, n}, cuda(at::kFloat)) + 0.5;
        auto g = at::randn({2, 19, hidden}, cuda(at::kFloat));
        auto kernel = forward_backward([](const auto& in) { return hc_collapse_cuda(in[0], in[1]); }, {streams, weights}, g);
        auto twin = forward_backward([](const auto& in) { return hc_collapse_reference(in[0], in[1]); }, {streams, weights}, g);
        auto ref = forward_backward([](const auto& in) { return hc_collapse_reference(in[0], in[1]); },
                                    as_float64({streams, weights}), g.to(at::kDouble));
        const auto what = strata::cat(dtype, " n ", n, " hidden ", hidden);
        testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " out");
        testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " d streams");
        testing::expect_as_accurate_as_twin(kernel.grads[1], twin.grads[1], ref.grads[1], what + " d weights");
      }
}

TEST(HcCombineKernel, CudaKernelMatchesReference) {
  // Float32 streams with a bfloat16 branch is what bf16 autocast training hands the combine.
  const std::vector<std::pair<at::ScalarType, at::ScalarType>> dtypes = {
      {at::kFloat, at::kFloat}, {at::kBFloat16, at::kBFloat16}, {at::kHalf, at::kHalf}, {at::kFloat, at::kBFloat16}};
  for (const auto& [streams_dtype, branch_dtype] : dtypes)
    for (int64_t n : {1, 3, 4, 8})
      for (int64_t hidden : {1, 7, 1024}) {
        auto streams = at::randn({2, 19, n, hidden}, cuda(at::kFloat)).to(streams_dtype);
        auto branch = at::randn({2, 19, hidden}, cuda(at::kFloat)).to(branch_dtype);
        auto post = at::rand({2, 19, n}, cuda(at::kFloat)) * 2;
        auto res = sinkhorn_knopp(at::randn({2, 19, n, n}, cuda(at::kFloat)), 20, 1e-6);
        auto g = at::randn({2, 19, n, hidden}, cuda(at::kFloat));
        auto op_kernel = [](const auto& in) { return hc_combine_cuda(in[0], in[1], in[2], in[3]); };
        auto op_twin = [](const auto& in) { return hc_combine_reference(in[0], in[1], in[2], in[3]); };
        auto kernel = forward_backward(op_kernel, {streams, branch, post, res}, g);
        auto twin = forward_backward(op_twin, {streams, branch, post, res}, g);
        auto ref = forward_backward(op_twin, as_float64({streams, branch, post, res}), g.to(at::kDouble));
        const auto what = strata::cat(streams_dtype, "/", branch_dtype, " n ", n, " hidden ", hidden);
        testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " out");
        const char* names[] = {" d streams", " d branch", " d post", " d res"};
        for (int i = 0; i < 4; ++i)
          testing::expect_as_accurate_as_twin(kernel.grads[i], twin.grads[i], ref.grads[i], what + names[i]);
      }
}

TEST(HcKernels, DispatchRunsTheKernelsOnCuda) {
  auto streams = at::randn({2, 3, 4, 8}, cuda(at::kBFloat16));
  auto weights = at::rand({2, 3, 4}, cuda(at::kFloat));
  auto branch = at::randn({2, 3, 8}, cuda(at::kBFloat16));
  auto res = at::rand({2, 3, 4, 4}, cuda(at::kFloat));
  EXPECT_TRUE(at::equal(hc_collapse(streams, weights), hc_collapse_cuda(streams, weights)));
  EXPECT_TRUE(at::equal(hc_combine(streams, branch, weights, res), hc_combine_cuda(streams, branch, weights, res)));
}
#endif

}  // namespace
}  // namespace strata::kernels
