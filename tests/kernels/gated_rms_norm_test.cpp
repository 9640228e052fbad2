// The gated RMSNorm twin against the formula and its hand-derived gradients (anywhere), and the
// CUDA kernels against the twin (on the GPU machine).
#include "strata/kernels/gated_rms_norm.h"

#include <gtest/gtest.h>

#include <utility>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::forward_backward;
using testing::relative_error;

// out = w x r silu(gate) with r = 1 / sqrt(mean(x^2) + eps), in float64 whatever the inputs'
// dtypes (the twin computes in float32 and rounds where HF does).
at::Tensor gated_rms_norm_float64(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& w, double eps) {
  auto x64 = x.to(at::kDouble);
  auto g64 = gate.to(at::kDouble);
  auto r = 1.0 / ((x64 * x64).sum(-1, /*keepdim=*/true) / static_cast<double>(x.size(-1)) + eps).sqrt();
  return w.to(at::kDouble) * x64 * r * g64 / (1.0 + at::exp(-g64));
}

// With n = x r, sigma = sigmoid(gate), s = gate sigma and d = g w s for the output gradient g:
// dx = r (d - n mean(d n)), dgate = g w n sigma (1 + gate (1 - sigma)), dw = sum over rows of g n s.
TEST(GatedRmsNormKernel, ReferenceMatchesTheFormulaAndItsGradients) {
  auto opts = at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
  const double eps = 1e-5;
  auto x = at::randn({2, 3, 4, 11}, opts) * 2;
  auto gate = at::randn({2, 3, 4, 11}, opts) * 2;
  auto w = at::randn({11}, opts);
  auto g = at::randn({2, 3, 4, 11}, opts);
  auto r = 1.0 / ((x * x).sum(-1, /*keepdim=*/true) / 11.0 + eps).sqrt();
  auto n = x * r;
  auto sigma = 1.0 / (1.0 + at::exp(-gate));
  auto s = gate * sigma;
  auto d = g * w * s;
  auto out = w * n * s;
  auto dx = r * (d - n * (d * n).sum(-1, /*keepdim=*/true) / 11.0);
  auto dgate = g * w * n * sigma * (1.0 + gate * (1.0 - sigma));
  auto dw = (g * n * s).sum(at::IntArrayRef{0, 1, 2});
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const double tolerance = dtype == at::kDouble ? 1e-12 : 1e-6;
    auto run = forward_backward([&](const auto& in) { return gated_rms_norm_reference(in[0], in[1], in[2], eps); },
                                {x.to(dtype), gate.to(dtype), w.to(dtype)}, g);
    EXPECT_LT(relative_error(run.output, out), tolerance) << dtype;
    EXPECT_LT(relative_error(run.output, gated_rms_norm_float64(x, gate, w, eps)), tolerance) << dtype;
    EXPECT_LT(relative_error(run.grads[0], dx), tolerance) << dtype;
    EXPECT_LT(relative_error(run.grads[1], dgate), tolerance) << dtype;
    EXPECT_LT(relative_error(run.grads[2], dw), tolerance) << dtype;
  }
}

TEST(GatedRmsNormKernel, DispatchRunsTheTwinOffCuda) {
  auto x = at::randn({2, 5, 3, 16});
  auto gate = at::randn({2, 5, 3, 16});
  auto w = at::randn({16});
  EXPECT_FALSE(use_cuda_kernels(x));
  EXPECT_TRUE(at::equal(gated_rms_norm(x, gate, w, 1e-6), gated_rms_norm_reference(x, gate, w, 1e-6)));
}

TEST(GatedRmsNormKernel, CudaEntryRefusesCpuTensors) {
  auto x = at::randn({4, 8});
  const auto message = strata::testing::error_of([&] { gated_rms_norm_cuda(x, x, at::ones({8}), 1e-6); });
  EXPECT_NE(message.find("gated_rms_norm_cuda: "), std::string::npos) << message;
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

using View = std::function<at::Tensor(const at::Tensor&)>;

// A row of one element normalises to +-1, and its input gradient r d eps / (x^2 + eps) is a
// difference that cancels in float32 unless x^2 is near eps; longer rows have no such trouble.
double input_scale(int64_t dim) { return dim == 1 ? 1e-3 : 3.0; }

// The kernel, the twin in the same dtypes and the formula in float64, forward and backward, on
// x_view(x) and gate_view(gate): the tensors themselves or strided views of them.
void expect_kernel_matches_twin(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& w,
                                const std::string& what, const View& x_view = {}, const View& gate_view = {}) {
  const double eps = 1e-6;
  auto vx = [&](const at::Tensor& t) { return x_view ? x_view(t) : t; };
  auto vg = [&](const at::Tensor& t) { return gate_view ? gate_view(t) : t; };
  auto g = at::randn(vx(x).sizes(), x.options());
  auto kernel = forward_backward(
      [&](const auto& in) { return gated_rms_norm_cuda(vx(in[0]), vg(in[1]), in[2], eps); }, {x, gate, w}, g);
  auto twin = forward_backward(
      [&](const auto& in) { return gated_rms_norm_reference(vx(in[0]), vg(in[1]), in[2], eps); }, {x, gate, w}, g);
  auto ref = forward_backward(
      [&](const auto& in) { return gated_rms_norm_float64(vx(in[0]), vg(in[1]), in[2], eps); },
      {x.to(at::kDouble), gate.to(at::kDouble), w.to(at::kDouble)}, g.to(at::kDouble));
  EXPECT_EQ(kernel.output.scalar_type(), x.scalar_type()) << what;
  EXPECT_TRUE(kernel.output.is_contiguous()) << what;
  testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " out");
  testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " grad_x");
  testing::expect_as_accurate_as_twin(kernel.grads[1], twin.grads[1], ref.grads[1], what + " grad_gate");
  testing::expect_as_accurate_as_twin(kernel.grads[2], twin.grads[2], ref.grads[2], what + " grad_weight");
}

at::Tensor float_weight(int64_t dim) { return 1 + 0.1 * at::randn({dim}, at::TensorOptions().device(at::kCUDA)); }

TEST(GatedRmsNormKernel, CudaKernelMatchesReference) {
  ASSERT_TRUE(cuda_kernels_built());
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (int64_t dim : {1, 7, 64, 128, 1000}) {
      auto opts = at::TensorOptions().device(at::kCUDA).dtype(dtype);
      // 2 x 37 x 5 = 370 rows: the weight gradient spans several of the backward's row chunks.
      auto x = at::randn({2, 37, 5, dim}, opts) * input_scale(dim);
      auto gate = at::randn({2, 37, 5, dim}, opts) * 2;
      expect_kernel_matches_twin(x, gate, float_weight(dim), strata::cat(dtype, " dim ", dim));
    }
  }
}

// As in the layer: x is the delta rule's output, a [B, H, T, D] tensor seen as [B, T, H, D], and
// gate a slice of the input projection's output [B, T, ...] split into heads.
TEST(GatedRmsNormKernel, CudaKernelReadsStridedViews) {
  const int64_t batch = 2, seq = 37, heads = 5;
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (int64_t dim : {1, 7, 64, 128, 1000}) {
      auto opts = at::TensorOptions().device(at::kCUDA).dtype(dtype);
      auto x = at::randn({batch, heads, seq, dim}, opts) * input_scale(dim);
      auto gate = at::randn({batch, seq, heads * dim + 16}, opts) * 2;
      expect_kernel_matches_twin(
          x, gate, float_weight(dim), strata::cat(dtype, " dim ", dim, " strided"),
          [](const at::Tensor& t) { return t.transpose(1, 2); },
          [=](const at::Tensor& t) { return t.narrow(-1, 8, heads * dim).reshape({batch, seq, heads, dim}); });
    }
  }
}

TEST(GatedRmsNormKernel, CudaKernelTakesOtherShapesAndUnalignedViews) {
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    auto opts = at::TensorOptions().device(at::kCUDA).dtype(dtype);
    auto w = float_weight(128);
    // Rows [N, D], as the HF comparison feeds them.
    expect_kernel_matches_twin(at::randn({300, 128}, opts) * 3, at::randn({300, 128}, opts), w,
                               strata::cat(dtype, " 2-D"));
    // A 3-D view whose rows are not evenly spaced: the wrapper copies it.
    expect_kernel_matches_twin(at::randn({7, 40, 128}, opts) * 3, at::randn({40, 7, 128}, opts), w,
                               strata::cat(dtype, " 3-D transposed"),
                               [](const at::Tensor& t) { return t.transpose(0, 1); });
    // A gate one element off a 16-byte boundary: the kernels read it element by element.
    expect_kernel_matches_twin(
        at::randn({2, 37, 5, 128}, opts) * 3, at::randn({2, 37, 5 * 128 + 1}, opts), w,
        strata::cat(dtype, " unaligned gate"), {},
        [](const at::Tensor& t) { return t.narrow(-1, 1, 5 * 128).reshape({2, 37, 5, 128}); });
  }
}

TEST(GatedRmsNormKernel, CudaKernelTakesAGateOfAnotherDtype) {
  const std::pair<at::ScalarType, at::ScalarType> pairs[] = {
      {at::kBFloat16, at::kFloat}, {at::kHalf, at::kFloat}, {at::kBFloat16, at::kHalf}, {at::kFloat, at::kBFloat16}};
  for (const auto& [x_type, gate_type] : pairs) {
    auto x = at::randn({2, 37, 5, 128}, at::TensorOptions().device(at::kCUDA).dtype(x_type)) * 3;
    auto gate = at::randn({2, 37, 5, 128}, at::TensorOptions().device(at::kCUDA).dtype(gate_type)) * 2;
    expect_kernel_matches_twin(x, gate, float_weight(128), strata::cat("x ", x_type, " gate ", gate_type));
  }
}

TEST(GatedRmsNormKernel, CudaGradientsAreDeterministic) {
  auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto x = at::randn({2, 512, 16, 128}, opts);
  auto gate = at::randn({2, 512, 16, 128}, opts);
  auto w = float_weight(128);
  auto g = at::randn({2, 512, 16, 128}, opts);
  auto op = [](const auto& in) { return gated_rms_norm_cuda(in[0], in[1], in[2], 1e-6); };
  auto first = forward_backward(op, {x, gate, w}, g);
  auto second = forward_backward(op, {x, gate, w}, g);
  EXPECT_TRUE(at::equal(first.output, second.output));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(at::equal(first.grads[i], second.grads[i])) << "input " << i;
}

TEST(GatedRmsNormKernel, DispatchRunsTheKernelOnCudaAndTheTwinBeyondIt) {
  auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto x = at::randn({3, 4, 2, 64}, opts);
  auto gate = at::randn({3, 4, 2, 64}, opts);
  auto w = float_weight(64);
  EXPECT_TRUE(use_cuda_kernels(x));
  EXPECT_TRUE(at::equal(gated_rms_norm(x, gate, w, 1e-6), gated_rms_norm_cuda(x, gate, w, 1e-6)));
  // A weight in the activations' dtype rounds its product with the normalised x: the twin's.
  auto w16 = w.to(at::kBFloat16);
  EXPECT_TRUE(at::equal(gated_rms_norm(x, gate, w16, 1e-6), gated_rms_norm_reference(x, gate, w16, 1e-6)));
  // Rows longer than the kernels take.
  auto long_x = at::randn({3, 2 * launch::kMaxGatedRmsNormDim}, opts);
  auto long_gate = at::randn({3, 2 * launch::kMaxGatedRmsNormDim}, opts);
  auto long_w = float_weight(2 * launch::kMaxGatedRmsNormDim);
  EXPECT_TRUE(at::equal(gated_rms_norm(long_x, long_gate, long_w, 1e-6),
                        gated_rms_norm_reference(long_x, long_gate, long_w, 1e-6)));
}

TEST(GatedRmsNormKernel, CudaEntryNamesShapesItDoesNotTake) {
  auto opts = at::TensorOptions().device(at::kCUDA);
  auto x = at::randn({4, 2048}, opts);
  const auto message = strata::testing::error_of([&] { gated_rms_norm_cuda(x, x, at::ones({2048}, opts), 1e-6); });
  EXPECT_NE(message.find("x has shape [4, 2048]"), std::string::npos) << message;
  EXPECT_NE(message.find("D in 1..1024"), std::string::npos) << message;
}
#endif

}  // namespace
}  // namespace strata::kernels
