// The chunked delta rule's scan kernel: its entry point's errors (anywhere) and, on the GPU
// machine, the kernel against its twin in both directions and through the delta rule.
#include "strata/kernels/chunk_state_scan.h"

#include <gtest/gtest.h>

#include <string>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/layers/delta_rule_chunk_states.h"
#include "strata/layers/gated_delta_rule.h"

namespace strata::kernels {
namespace {

ChunkScanInputs random_scan_inputs(int64_t chunks, int64_t chunk, int64_t key_dim, int64_t value_dim,
                                   at::TensorOptions options) {
  const int64_t batch = 2, heads = 3;
  // Scaled so that the carried value neither explodes nor vanishes over the chunks.
  const double scale = 0.5 / std::sqrt(static_cast<double>(chunk * key_dim));
  return {.x0 = at::randn({batch, heads, key_dim, value_dim}, options),
          .y_init = at::randn({batch, heads, chunks, chunk, value_dim}, options),
          .a = at::randn({batch, heads, chunks, chunk, key_dim}, options) * scale * 4,
          .b = at::randn({batch, heads, chunks, chunk, key_dim}, options) * scale,
          .decay = at::rand({batch, heads, chunks}, options),
          .x_add = at::randn({batch, heads, chunks, key_dim, value_dim}, options)};
}

TEST(ChunkStateScanKernel, CudaEntryPointRefusesCpuTensorsByName) {
  auto in = random_scan_inputs(2, 4, 8, 4, at::TensorOptions());
  EXPECT_FALSE(chunk_state_scan_kernel_applies(in));
  try {
    chunk_state_scan_cuda(in);
    ADD_FAILURE() << "chunk_state_scan_cuda accepted CPU tensors";
  } catch (const std::exception& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("chunk_state_scan_cuda"), std::string::npos) << message;
    EXPECT_TRUE(message.find("no CUDA kernels") != std::string::npos ||
                message.find("expected a CUDA tensor") != std::string::npos)
        << message;
  }
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

at::TensorOptions cuda(at::ScalarType dtype) { return at::TensorOptions().device(at::kCUDA).dtype(dtype); }

ChunkScanInputs as_dtype(const ChunkScanInputs& in, at::ScalarType dtype) {
  auto out = in;
  for (auto* t : {&out.x0, &out.y_init, &out.a, &out.b, &out.decay, &out.x_add})
    if (t->defined()) *t = t->to(dtype);
  return out;
}

// Shapes: Qwen3-Next's heads (Dk = Dv = 128, chunks of 64), a value width that is not a multiple
// of the block's 16 columns, the longest chunk and the widest key the kernel takes, odd sizes.
TEST(ChunkStateScanKernel, CudaKernelMatchesTheTwinInBothDirections) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  struct Shape {
    int64_t chunks, chunk, key_dim, value_dim;
  };
  for (const auto& s : {Shape{6, 64, 128, 128}, Shape{3, 16, 64, 40}, Shape{2, 128, 128, 33}, Shape{2, 64, 256, 20},
                        Shape{5, 7, 12, 5}})
    for (bool reverse : {false, true})
      for (bool with_add : {false, true}) {
        auto in = random_scan_inputs(s.chunks, s.chunk, s.key_dim, s.value_dim, cuda(at::kFloat));
        in.reverse = reverse;
        in.y_sign = reverse ? 1.0 : -1.0;
        in.x_sign = reverse ? -1.0 : 1.0;
        if (!with_add) in.x_add = at::Tensor();
        ASSERT_TRUE(chunk_state_scan_kernel_applies(in));
        auto kernel = chunk_state_scan_cuda(in);
        auto twin = chunk_state_scan_reference(in);
        auto ref = chunk_state_scan_reference(as_dtype(in, at::kDouble));
        const auto what = strata::cat("chunks ", s.chunks, " chunk ", s.chunk, " Dk ", s.key_dim, " Dv ", s.value_dim,
                                      reverse ? " reverse" : " forward", with_add ? " with x_add" : "");
        testing::expect_as_accurate_as_twin(kernel.states, twin.states, ref.states, what + " states");
        testing::expect_as_accurate_as_twin(kernel.y, twin.y, ref.y, what + " y");
        testing::expect_as_accurate_as_twin(kernel.x_final, twin.x_final, ref.x_final, what + " x_final");
      }
}

// Segments (packed documents): a block per (segment, sequence-head pair), empty segments included.
TEST(ChunkStateScanKernel, CudaKernelMatchesTheTwinWithSegments) {
  for (const auto& offsets : {std::vector<int64_t>{0, 6}, std::vector<int64_t>{0, 1, 1, 4, 6},
                              std::vector<int64_t>{0, 2, 3, 4, 5, 6}})
    for (bool reverse : {false, true}) {
      const auto segments = static_cast<int64_t>(offsets.size()) - 1;
      auto in = random_scan_inputs(6, 64, 128, 40, cuda(at::kFloat));
      for (auto* t : {&in.y_init, &in.a, &in.b, &in.decay, &in.x_add}) *t = t->narrow(0, 0, 1);
      in.x0 = at::randn({segments, 1, 3, 128, 40}, cuda(at::kFloat));
      in.chunk_offsets = at::tensor(offsets, at::kLong);
      in.reverse = reverse;
      ASSERT_TRUE(chunk_state_scan_kernel_applies(in));
      auto kernel = chunk_state_scan_cuda(in);
      auto twin = chunk_state_scan_reference(in);
      auto ref = chunk_state_scan_reference(as_dtype(in, at::kDouble));
      const auto what = strata::cat("chunk_offsets ", at::IntArrayRef(offsets), reverse ? " reverse" : " forward");
      testing::expect_as_accurate_as_twin(kernel.states, twin.states, ref.states, what + " states");
      testing::expect_as_accurate_as_twin(kernel.y, twin.y, ref.y, what + " y");
      testing::expect_as_accurate_as_twin(kernel.x_final, twin.x_final, ref.x_final, what + " x_final");
    }
}

// The whole chunked rule on CUDA (kernel scans forward and backward) against its float64 run,
// as accurate as the same rule with every chunk_state_scan on the twin would be: the recurrent
// form, which shares no code with the chunked one, is that yardstick.
TEST(ChunkStateScanKernel, ChunkedDeltaRuleOnTheKernelMatchesFloat64) {
  const int64_t batch = 1, seq = 300, heads = 4, key_dim = 128, value_dim = 64;
  auto unit = [&](int64_t dim) {
    auto x = at::randn({batch, seq, heads, dim}, cuda(at::kFloat));
    return x / x.norm(2, -1, /*keepdim=*/true);
  };
  std::vector<at::Tensor> inputs = {unit(key_dim) / std::sqrt(static_cast<double>(key_dim)), unit(key_dim),
                                    at::randn({batch, seq, heads, value_dim}, cuda(at::kFloat)),
                                    at::log_sigmoid(at::randn({batch, seq, heads}, cuda(at::kFloat)) + 2),
                                    at::sigmoid(at::randn({batch, seq, heads}, cuda(at::kFloat)))};
  auto g = at::randn({batch, seq, heads, value_dim}, cuda(at::kFloat));
  auto chunked = [](const auto& in) { return gated_delta_rule_chunked(in[0], in[1], in[2], in[3], in[4], 64, std::nullopt).out; };
  auto recurrent = [](const auto& in) { return gated_delta_rule_recurrent(in[0], in[1], in[2], in[3], in[4], std::nullopt).out; };
  std::vector<at::Tensor> inputs64;
  for (const auto& t : inputs) inputs64.push_back(t.to(at::kDouble));
  auto kernel = testing::forward_backward(chunked, inputs, g);
  auto twin = testing::forward_backward(recurrent, inputs, g);
  auto ref = testing::forward_backward(chunked, inputs64, g.to(at::kDouble));
  testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, "out");
  const char* names[] = {"q", "k", "v", "g", "beta"};
  for (size_t i = 0; i < inputs.size(); ++i)
    testing::expect_as_accurate_as_twin(kernel.grads[i], twin.grads[i], ref.grads[i], std::string("d ") + names[i]);
}

// Packed documents through the whole chunked rule on CUDA (the kernel scans forward and backward
// over segments): as accurate against the float64 documents run one by one as the float32
// recurrent form over the same packed row.
TEST(ChunkStateScanKernel, ChunkedDeltaRuleWithDocumentsOnTheKernelMatchesFloat64) {
  const int64_t seq = 300, heads = 4, key_dim = 128, value_dim = 64;
  const std::vector<int64_t> bounds{0, 1, 65, 190, 191, 300};
  auto unit = [&](int64_t dim) {
    auto x = at::randn({1, seq, heads, dim}, cuda(at::kFloat));
    return x / x.norm(2, -1, /*keepdim=*/true);
  };
  std::vector<at::Tensor> inputs = {unit(key_dim) / std::sqrt(static_cast<double>(key_dim)), unit(key_dim),
                                    at::randn({1, seq, heads, value_dim}, cuda(at::kFloat)),
                                    at::log_sigmoid(at::randn({1, seq, heads}, cuda(at::kFloat)) + 2),
                                    at::sigmoid(at::randn({1, seq, heads}, cuda(at::kFloat)))};
  auto g = at::randn({1, seq, heads, value_dim}, cuda(at::kFloat));
  auto cu_seqlens = at::tensor(bounds, cuda(at::kLong));
  auto chunked = [&](const auto& in) {
    return gated_delta_rule_chunked(in[0], in[1], in[2], in[3], in[4], 64, std::nullopt, cu_seqlens).out;
  };
  auto recurrent = [&](const auto& in) {
    return gated_delta_rule_recurrent(in[0], in[1], in[2], in[3], in[4], std::nullopt, cu_seqlens).out;
  };
  auto one_by_one = [&](const auto& in) {
    std::vector<at::Tensor> outs;
    for (size_t d = 0; d + 1 < bounds.size(); ++d) {
      std::vector<at::Tensor> part;
      for (const auto& t : in) part.push_back(t.narrow(1, bounds[d], bounds[d + 1] - bounds[d]));
      outs.push_back(gated_delta_rule_chunked(part[0], part[1], part[2], part[3], part[4], 64, std::nullopt).out);
    }
    return at::cat(outs, 1);
  };
  std::vector<at::Tensor> inputs64;
  for (const auto& t : inputs) inputs64.push_back(t.to(at::kDouble));
  auto kernel = testing::forward_backward(chunked, inputs, g);
  auto twin = testing::forward_backward(recurrent, inputs, g);
  auto ref = testing::forward_backward(one_by_one, inputs64, g.to(at::kDouble));
  testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, "out");
  const char* names[] = {"q", "k", "v", "g", "beta"};
  for (size_t i = 0; i < inputs.size(); ++i)
    testing::expect_as_accurate_as_twin(kernel.grads[i], twin.grads[i], ref.grads[i], std::string("d ") + names[i]);
}

TEST(ChunkStateScanKernel, AppliesToFloat32CudaWithinItsSizes) {
  EXPECT_TRUE(chunk_state_scan_kernel_applies(random_scan_inputs(2, 64, 128, 128, cuda(at::kFloat))));
  EXPECT_FALSE(chunk_state_scan_kernel_applies(random_scan_inputs(2, 64, 128, 128, cuda(at::kDouble))));
  EXPECT_FALSE(chunk_state_scan_kernel_applies(random_scan_inputs(2, 64, 6, 8, cuda(at::kFloat))));    // Dk % 4
  EXPECT_FALSE(chunk_state_scan_kernel_applies(random_scan_inputs(2, 64, 260, 8, cuda(at::kFloat))));  // Dk > 256
  EXPECT_FALSE(chunk_state_scan_kernel_applies(random_scan_inputs(2, 129, 64, 8, cuda(at::kFloat))));  // C > 128
  EXPECT_FALSE(chunk_state_scan_kernel_applies(random_scan_inputs(2, 128, 256, 8, cuda(at::kFloat))));  // > 227 KB
}

#endif

}  // namespace
}  // namespace strata::kernels
