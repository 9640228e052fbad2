// mHC's fused half boundary (kernels::hc_boundary) against the unfused ops it replaces: values
// and every gradient (streams, branch, post, res, and the next half's fn, base, scale through f
// and pre), n in {1, 2, 4, 8}, float32 and bfloat16 streams. On the CPU (the ATen twin of the
// hand-written backward) and, with STRATA_TEST_DEVICE=cuda in a CUDA build, the CUDA kernels.
#include "strata/kernels/hc_boundary.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/kernels/hyper_connection.h"
#include "strata/layers/sinkhorn.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::relative_error;

const char* const kNames[] = {"streams'", "x_next", "f",     "d streams", "d branch", "d post",
                              "d res",    "d fn",   "d base", "d scale"};

// The three outputs, then the gradients of the seven inputs, for the loss
// sum(streams' * g_streams) + sum(x_next * g_input) + sum(f * g_f) (undefined probes left out).
using Boundary = std::function<HcBoundary(const std::vector<at::Tensor>&, double, double)>;

std::vector<at::Tensor> run(const Boundary& op, const std::vector<at::Tensor>& inputs,
                            const std::vector<at::Tensor>& probes) {
  std::vector<at::Tensor> leaves;
  for (const auto& t : inputs) leaves.push_back(t.detach().clone().requires_grad_(true));
  const auto out = op(leaves, 1e-6, 1e-6);
  const std::vector<at::Tensor> outputs = {out.streams, out.next_input, out.projection};
  at::Tensor loss;
  for (size_t i = 0; i < 3; ++i) {
    if (!probes[i].defined()) continue;
    auto term = (outputs[i] * probes[i].to(outputs[i].device(), outputs[i].scalar_type())).sum().to(at::kDouble);
    loss = loss.defined() ? loss + term : term;
  }
  loss.backward();
  std::vector<at::Tensor> results(outputs.begin(), outputs.end());
  for (const auto& leaf : leaves) results.push_back(leaf.grad());
  return results;
}

HcBoundary fused(const std::vector<at::Tensor>& in, double norm_eps, double eps) {
  return hc_boundary(in[0], in[1], in[2], in[3], {in[4], in[5], in[6], norm_eps, eps});
}

HcBoundary unfused(const std::vector<at::Tensor>& in, double norm_eps, double eps) {
  return hc_boundary_unfused(in[0], in[1], in[2], in[3], {in[4], in[5], in[6], norm_eps, eps});
}

// streams, branch (in `dtype`), post, res, fn, base, scale (float32) for [2, 5] tokens.
std::vector<at::Tensor> random_inputs(int64_t n, int64_t hidden, at::ScalarType dtype) {
  const auto options = at::TensorOptions().device(strata::testing::test_device()).dtype(at::kFloat);
  const int64_t maps = 2 * n + n * n;
  return {(at::randn({2, 5, n, hidden}, options) * 2).to(dtype),
          at::randn({2, 5, hidden}, options).to(dtype),
          at::rand({2, 5, n}, options) * 2,
          sinkhorn_knopp(at::randn({2, 5, n, n}, options), 20, 1e-6),
          at::randn({maps, n * hidden}, options) * 0.2,
          at::randn({maps}, options) * 0.5,
          at::randn({3}, options)};
}

std::vector<at::Tensor> as_double_cpu(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.defined() ? t.cpu().to(at::kDouble) : t);
  return out;
}

// Each of the fused op's results is within the dtype's tolerance of the float64 reference, or at
// most twice as far from it as the unfused ops in the same dtype.
void expect_fused_as_accurate(const std::vector<at::Tensor>& inputs, const std::vector<at::Tensor>& probes,
                              at::ScalarType dtype, const std::string& what) {
  const auto got = run(fused, inputs, probes);
  const auto twin = run(unfused, inputs, probes);
  const auto reference = run(unfused, as_double_cpu(inputs), as_double_cpu(probes));
  ASSERT_EQ(got.size(), reference.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (!reference[i].defined()) {  // no path to the loss unfused: zero (or none) fused
      EXPECT_TRUE(!got[i].defined() || at::count_nonzero(got[i]).item<int64_t>() == 0) << what << " " << kNames[i];
      continue;
    }
    ASSERT_TRUE(got[i].defined()) << what << " " << kNames[i];
    EXPECT_EQ(got[i].sizes(), reference[i].sizes()) << what << " " << kNames[i];
    EXPECT_EQ(got[i].scalar_type(), twin[i].scalar_type()) << what << " " << kNames[i];
    EXPECT_TRUE(at::isfinite(got[i]).all().item<bool>()) << what << " " << kNames[i];
    const double error = relative_error(got[i], reference[i]), twin_error = relative_error(twin[i], reference[i]);
    EXPECT_LE(error, std::max(2.0 * twin_error, testing::dtype_tolerance(dtype)))
        << what << " " << kNames[i] << ": fused error " << error << ", unfused " << twin_error;
  }
  // The ATen twin's forward runs the unfused twins' ops: the same bits.
  if (!inputs[0].is_cuda()) {
    for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(at::equal(got[i], twin[i])) << what << " " << kNames[i];
  }
}

TEST(HcBoundary, FusedMatchesTheUnfusedOpsInValuesAndEveryGradient) {
  at::manual_seed(11);
  for (auto dtype : {at::kFloat, at::kBFloat16})
    for (int64_t n : {1, 2, 4, 8})
      // 24 and 1024: the kernels' vector loads (1024: several per thread); 7 and 1030: one element
      // at a time.
      for (int64_t hidden : {24, 7, 1024, 1030}) {
        const auto inputs = random_inputs(n, hidden, dtype);
        const auto options = inputs[0].options().dtype(at::kFloat);
        const std::vector<at::Tensor> probes = {at::randn({2, 5, n, hidden}, options), at::randn({2, 5, hidden}, options),
                                                at::randn({2, 5, 2 * n + n * n}, options)};
        expect_fused_as_accurate(inputs, probes, dtype, cat(dtype, " n ", n, " hidden ", hidden));
      }
}

// A gradient that reaches only some outputs (x_next, streams' or f alone) leaves the others'
// undefined; the backward takes them as zero.
TEST(HcBoundary, GradientOfTheNextInputAloneMatches) {
  at::manual_seed(12);
  for (int64_t n : {1, 4}) {
    const auto inputs = random_inputs(n, 16, at::kFloat);
    const auto options = inputs[0].options().dtype(at::kFloat);
    expect_fused_as_accurate(inputs, {at::Tensor(), at::randn({2, 5, 16}, options), at::Tensor()}, at::kFloat,
                             cat("x_next only, n ", n));
    expect_fused_as_accurate(inputs, {at::randn({2, 5, n, 16}, options), at::Tensor(), at::Tensor()}, at::kFloat,
                             cat("streams' only, n ", n));
    expect_fused_as_accurate(inputs, {at::Tensor(), at::Tensor(), at::randn({2, 5, 2 * n + n * n}, options)},
                             at::kFloat, cat("f only, n ", n));
  }
}

// Float32 streams with a bfloat16 branch (bf16 autocast with float32 streams): the new streams
// are float32 and the branch's gradient bfloat16, as the unfused combine gives.
TEST(HcBoundary, Float32StreamsWithABfloat16Branch) {
  at::manual_seed(13);
  auto inputs = random_inputs(4, 24, at::kFloat);
  inputs[1] = inputs[1].to(at::kBFloat16);
  const auto options = inputs[0].options();
  const std::vector<at::Tensor> probes = {at::randn({2, 5, 4, 24}, options), at::randn({2, 5, 24}, options),
                                          at::randn({2, 5, 24}, options)};
  const auto got = run(fused, inputs, probes);
  EXPECT_EQ(got[0].scalar_type(), at::kFloat);
  EXPECT_EQ(got[4].scalar_type(), at::kBFloat16);
  expect_fused_as_accurate(inputs, probes, at::kFloat, "float32 streams, bfloat16 branch");
}

TEST(HcBoundary, ShapeErrorsNameTheTensor) {
  const auto inputs = random_inputs(2, 8, at::kFloat);
  const HcNextMaps next{inputs[4], inputs[5], inputs[6], 1e-6, 1e-6};
  auto message = [&](const std::function<void()>& call) {
    try {
      call();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message([&] { hc_boundary(inputs[0], inputs[1].narrow(-1, 0, 4), inputs[2], inputs[3], next); })
                .find("hc_boundary: branch of shape"),
            std::string::npos);
  EXPECT_NE(message([&] { hc_boundary(inputs[0], inputs[1], inputs[2], inputs[3], {inputs[4].t(), inputs[5], inputs[6], 1e-6, 1e-6}); })
                .find("hc_boundary: fn of shape"),
            std::string::npos);
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine: the boundary runs its
// kernels there, and its combine sums in hc_combine_cuda's order (the same bits).
TEST(HcBoundary, CudaCombineIsHcCombinesBits) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  at::manual_seed(14);
  const auto cuda = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  for (auto dtype : {at::kFloat, at::kBFloat16})
    for (int64_t n : {1, 4, 8}) {
      const int64_t hidden = 1024, maps = 2 * n + n * n;
      auto streams = at::randn({3, 7, n, hidden}, cuda).to(dtype);
      auto branch = at::randn({3, 7, hidden}, cuda).to(dtype);
      auto post = at::rand({3, 7, n}, cuda) * 2;
      auto res = sinkhorn_knopp(at::randn({3, 7, n, n}, cuda), 20, 1e-6);
      const HcNextMaps next{at::randn({maps, n * hidden}, cuda) * 0.02, at::zeros({maps}, cuda), at::ones({3}, cuda),
                            1e-6, 1e-6};
      const auto out = hc_boundary(streams, branch, post, res, next);
      EXPECT_TRUE(at::equal(out.streams, hc_combine_cuda(streams, branch, post, res))) << dtype << " n " << n;
    }
}
#endif

}  // namespace
}  // namespace strata::kernels
