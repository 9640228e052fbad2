// The cross-entropy twin against logsumexp and softmax written out (anywhere), and the CUDA
// kernels against the twin (on the GPU machine).
#include "strata/kernels/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::forward_backward;
using testing::relative_error;

// Labels in [0, vocab) with about one in five set to the ignore index.
at::Tensor random_labels(int64_t batch, int64_t seq, int64_t vocab, at::Device device) {
  auto labels = at::randint(vocab, {batch, seq}, at::TensorOptions().dtype(at::kLong).device(device));
  return labels.masked_fill(at::rand({batch, seq}, at::TensorOptions().device(device)) < 0.2, kIgnoreIndex);
}

// The twin's shift and mean in float64 (the twin itself computes in float32).
at::Tensor cross_entropy_float64(const at::Tensor& logits, const at::Tensor& labels) {
  const auto t = logits.size(1);
  auto predicted = logits.narrow(1, 0, t - 1).reshape({-1, logits.size(-1)}).to(at::kDouble);
  return at::cross_entropy_loss(predicted, labels.narrow(1, 1, t - 1).reshape({-1}), {}, at::Reduction::Mean,
                                kIgnoreIndex);
}

// Row (b, t) predicts labels[b, t + 1]: loss = mean over predicted rows of logsumexp - logit of
// the label; its gradient is (softmax - onehot) * grad / count on those rows, zero elsewhere.
TEST(CrossEntropyKernel, ReferenceMatchesLogsumexpAndSoftmaxByHand) {
  const auto device = strata::testing::test_device();
  const int64_t batch = 2, seq = 6, vocab = 13;
  auto logits = at::randn({batch, seq, vocab}, at::TensorOptions().device(device).dtype(at::kDouble)) * 3;
  auto labels = random_labels(batch, seq, vocab, device);
  labels[0][1] = kIgnoreIndex;  // at least one ignored and (below) one predicted label
  labels[1][2] = 4;
  const double grad = 0.7;
  auto x = logits.cpu();
  auto y = labels.cpu();
  double total = 0.0;
  int64_t count = 0;
  auto expected_grad = at::zeros({batch, seq, vocab}, at::kDouble);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t + 1 < seq; ++t) {
      const int64_t target = y[b][t + 1].item<int64_t>();
      if (target == kIgnoreIndex) continue;
      double sum = 0.0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(x[b][t][v].item<double>());
      total += std::log(sum) - x[b][t][target].item<double>();
      ++count;
      for (int64_t v = 0; v < vocab; ++v)
        expected_grad[b][t][v] = std::exp(x[b][t][v].item<double>()) / sum - (v == target ? 1.0 : 0.0);
    }
  ASSERT_GT(count, 0);
  expected_grad *= grad / static_cast<double>(count);
  const double expected_loss = total / static_cast<double>(count);
  auto run = forward_backward([&](const auto& in) { return causal_lm_cross_entropy_reference(in[0], in[1]); },
                              {logits.to(at::kFloat), labels}, at::full({}, grad, at::kDouble));
  EXPECT_NEAR(run.output.item<double>(), expected_loss, 1e-6 * expected_loss);
  EXPECT_LT(relative_error(run.grads[0], expected_grad), 1e-6);
  // The float64 reference the GPU tests use is the same function.
  auto run64 = forward_backward([&](const auto& in) { return cross_entropy_float64(in[0], in[1]); }, {logits, labels},
                                at::full({}, grad, at::kDouble));
  EXPECT_NEAR(run64.output.item<double>(), expected_loss, 1e-12 * expected_loss);
  EXPECT_LT(relative_error(run64.grads[0], expected_grad), 1e-12);
}

TEST(CrossEntropyKernel, DispatchRunsTheTwinOffCuda) {
  auto logits = at::randn({2, 5, 11});
  auto labels = random_labels(2, 5, 11, at::kCPU);
  EXPECT_TRUE(at::equal(causal_lm_cross_entropy(logits, labels), causal_lm_cross_entropy_reference(logits, labels)));
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

TEST(CrossEntropyKernel, CudaKernelMatchesReference) {
  ASSERT_TRUE(cuda_kernels_built());
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  const auto grad = at::full({}, 0.7, at::TensorOptions().device(at::kCUDA));
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // Odd vocabularies take the one-element path, multiples of 8 the 16-byte one.
    for (int64_t vocab : {1, 7, 64, 1001, 32768, 50257}) {
      const int64_t batch = 2, seq = vocab > 10000 ? 19 : 37;
      auto logits = at::randn({batch, seq, vocab}, at::TensorOptions().device(at::kCUDA).dtype(dtype)) * 4;
      auto labels = random_labels(batch, seq, vocab, at::kCUDA);
      auto op = [](auto f) { return [f](const std::vector<at::Tensor>& in) { return f(in[0], in[1]); }; };
      auto kernel = forward_backward(op(causal_lm_cross_entropy_cuda), {logits, labels}, grad);
      auto twin = forward_backward(op(causal_lm_cross_entropy_reference), {logits, labels}, grad);
      auto ref = forward_backward(op(cross_entropy_float64), {logits.to(at::kDouble), labels}, grad.to(at::kDouble));
      const auto what = strata::cat(dtype, " vocab ", vocab);
      EXPECT_EQ(kernel.output.scalar_type(), at::kFloat) << what;
      EXPECT_EQ(kernel.output.dim(), 0) << what;
      testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " loss");
      EXPECT_EQ(kernel.grads[0].scalar_type(), dtype) << what;
      testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " grad");
    }
  }
}

TEST(CrossEntropyKernel, CudaKernelWithNothingToPredictGivesNanLossAndZeroGradient) {
  auto logits = at::randn({2, 5, 9}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
  auto labels = at::full({2, 5}, kIgnoreIndex, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
  auto run = forward_backward([](const auto& in) { return causal_lm_cross_entropy_cuda(in[0], in[1]); },
                              {logits, labels}, at::ones({}, at::kCUDA));
  EXPECT_TRUE(std::isnan(run.output.item<double>()));
  EXPECT_TRUE(std::isnan(causal_lm_cross_entropy_reference(logits, labels).item<double>()));
  EXPECT_TRUE(at::equal(run.grads[0], at::zeros_like(logits)));
}

TEST(CrossEntropyKernel, CudaKernelGivesNanForALabelOutsideTheVocabulary) {
  auto logits = at::randn({1, 4, 9}, at::TensorOptions().device(at::kCUDA));
  auto labels = at::tensor({0, 3, 9, 1}, at::TensorOptions().dtype(at::kLong)).view({1, 4}).to(at::kCUDA);
  EXPECT_TRUE(std::isnan(causal_lm_cross_entropy_cuda(logits, labels).item<double>()));
}

TEST(CrossEntropyKernel, DispatchRunsTheKernelOnCuda) {
  auto logits = at::randn({2, 5, 11}, at::kCUDA);
  auto labels = random_labels(2, 5, 11, at::kCUDA);
  EXPECT_TRUE(at::equal(causal_lm_cross_entropy(logits, labels), causal_lm_cross_entropy_cuda(logits, labels)));
}
#endif

}  // namespace
}  // namespace strata::kernels
