// The causal conv1d + SiLU twin against the formula and its hand-derived gradients (anywhere), and
// the CUDA kernels against the twin (on the GPU machine), alone and inside the Gated DeltaNet layer.
#include "strata/kernels/causal_conv1d.h"

#include <gtest/gtest.h>

#include <string>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "test_util.h"

#ifdef STRATA_CUDA
#include "gated_delta_net_copies.h"
#include "strata/core/compat.h"
#endif

namespace strata::kernels {
namespace {

using testing::forward_backward;
using testing::relative_error;

// x [B, T, C] delayed by d steps: y[:, t] = x[:, t - d], zero for t < d.
at::Tensor delayed(const at::Tensor& x, int64_t d) {
  const auto seq = x.size(1);
  if (d >= seq) return at::zeros_like(x);
  return at::cat({at::zeros_like(x.narrow(1, 0, d)), x.narrow(1, 0, seq - d)}, 1);
}

// x [B, T, C] advanced by d steps: y[:, t] = x[:, t + d], zero for t + d >= T.
at::Tensor advanced(const at::Tensor& x, int64_t d) {
  const auto seq = x.size(1);
  if (d >= seq) return at::zeros_like(x);
  return at::cat({x.narrow(1, d, seq - d), at::zeros_like(x.narrow(1, 0, d))}, 1);
}

struct Expected {
  at::Tensor out, grad_x, grad_w;
};

// The definition as shifted sums: pre = sum_j w[c, j] x[t - (K - 1) + j], out = pre sigmoid(pre);
// for the output gradient g, gp = g sigmoid(pre) (1 + pre (1 - sigmoid(pre))),
// grad_x = sum_j w[c, j] gp[t + (K - 1) - j], grad_w[c, 0, j] = sum_{b, t} gp x[t - (K - 1) + j].
Expected formula(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& g) {
  const auto width = weight.size(2);
  auto taps = weight.squeeze(1);  // [C, K]
  auto pre = at::zeros_like(x);
  for (int64_t j = 0; j < width; ++j) pre = pre + taps.select(1, j) * delayed(x, width - 1 - j);
  auto sig = 1.0 / (1.0 + at::exp(-pre));
  auto gp = g * sig * (1.0 + pre * (1.0 - sig));
  auto grad_x = at::zeros_like(x);
  std::vector<at::Tensor> grad_taps;
  for (int64_t j = 0; j < width; ++j) {
    grad_x = grad_x + taps.select(1, j) * advanced(gp, width - 1 - j);
    grad_taps.push_back((gp * delayed(x, width - 1 - j)).sum(at::IntArrayRef{0, 1}));
  }
  return {pre * sig, grad_x, at::stack(grad_taps, 1).unsqueeze(1)};
}

TEST(CausalConv1dKernel, ReferenceMatchesTheFormulaAndItsGradients) {
  auto opts = at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
  for (int64_t width : {1, 2, 4}) {
    // T = 1 and 3 are shorter than K = 4: every output sees the causal zeros.
    for (int64_t seq : {1, 3, 10}) {
      auto x = at::randn({2, seq, 5}, opts) * 1.5;
      auto w = at::randn({5, 1, width}, opts) * 0.7;
      auto g = at::randn({2, seq, 5}, opts);
      const auto want = formula(x, w, g);
      for (auto dtype : {at::kDouble, at::kFloat}) {
        const double tolerance = dtype == at::kDouble ? 1e-12 : 1e-6;
        auto run = forward_backward([](const auto& in) { return causal_conv1d_silu_reference(in[0], in[1]); },
                                    {x.to(dtype), w.to(dtype)}, g);
        const auto what = strata::cat(dtype, " K ", width, " T ", seq);
        ASSERT_EQ(run.output.sizes(), x.sizes()) << what;
        EXPECT_LT(relative_error(run.output, want.out), tolerance) << what;
        EXPECT_LT(relative_error(run.grads[0], want.grad_x), tolerance) << what;
        EXPECT_LT(relative_error(run.grads[1], want.grad_w), tolerance) << what;
      }
    }
  }
}

// Packed documents: the twin with cu_seqlens is the formula applied to each document alone (its
// own causal zeros), values and both gradients; documents shorter than K and of length 1 included.
TEST(CausalConv1dKernel, ReferenceWithDocumentsIsTheFormulaPerDocument) {
  auto opts = at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
  const std::vector<int64_t> bounds{0, 1, 3, 10, 11, 20};
  for (int64_t width : {1, 2, 4}) {
    auto x = at::randn({1, 20, 5}, opts) * 1.5;
    auto w = at::randn({5, 1, width}, opts) * 0.7;
    auto g = at::randn({1, 20, 5}, opts);
    auto run = forward_backward(
        [&](const auto& in) { return causal_conv1d_silu_reference(in[0], in[1], at::tensor(bounds, at::kLong)); },
        {x, w}, g);
    std::vector<at::Tensor> outs, grad_xs;
    auto grad_w = at::zeros_like(w);
    for (size_t d = 0; d + 1 < bounds.size(); ++d) {
      auto part = [&](const at::Tensor& t) { return t.narrow(1, bounds[d], bounds[d + 1] - bounds[d]); };
      const auto want = formula(part(x), w, part(g));
      outs.push_back(want.out);
      grad_xs.push_back(want.grad_x);
      grad_w = grad_w + want.grad_w;
    }
    const auto what = strata::cat("K ", width);
    EXPECT_LT(relative_error(run.output, at::cat(outs, 1)), 1e-12) << what;
    EXPECT_LT(relative_error(run.grads[0], at::cat(grad_xs, 1)), 1e-12) << what;
    EXPECT_LT(relative_error(run.grads[1], grad_w), 1e-12) << what;
    if (width > 1) {  // the comparison would see a conv reaching across documents
      EXPECT_GT(relative_error(formula(x, w, g).out, at::cat(outs, 1)), 1e-3) << what;
    }
  }
}

TEST(CausalConv1dKernel, RejectsDocumentsThatDoNotCoverTheRow) {
  const auto message = strata::testing::error_of(
      [] { causal_conv1d_silu(at::randn({1, 9, 6}), at::randn({6, 1, 4}), at::tensor({0, 4, 8}, at::kLong)); });
  EXPECT_NE(message.find("causal_conv1d_silu_reference: cu_seqlens must run from 0 to T = 9, got [0, 4, 8]"),
            std::string::npos)
      << message;
}

TEST(CausalConv1dKernel, DispatchRunsTheTwinOffCuda) {
  auto x = at::randn({2, 9, 24}).narrow(-1, 0, 16);  // rows wider than the channels, as in the layer
  auto w = at::randn({16, 1, 4});
  EXPECT_TRUE(at::equal(causal_conv1d_silu(x, w), causal_conv1d_silu_reference(x, w)));
}

TEST(CausalConv1dKernel, RejectsAWeightThatDoesNotMatchTheChannels) {
  const auto message = strata::testing::error_of([] { causal_conv1d_silu(at::randn({2, 9, 6}), at::randn({5, 1, 4})); });
  EXPECT_NE(message.find("weight has shape [5, 1, 4] for x of shape [2, 9, 6]; expected [6, 1, K]"), std::string::npos)
      << message;
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

// How the kernel test lays x out: the op sees view(source), and the gradients are the source's.
enum class Layout {
  contiguous,       // [B, T, C]
  wide_rows,        // columns 0 .. C - 1 of [B, T, C + 24]: the layer's slice of in_proj (packs)
  misaligned_rows,  // columns 3 .. C + 2 of [B, T, C + 24]: one channel per thread
  strided_channels  // the transpose of [B, C, T]: copied to contiguous channels first
};

at::Tensor source_for(Layout layout, int64_t seq, int64_t channels, at::TensorOptions options) {
  switch (layout) {
    case Layout::contiguous: return at::randn({2, seq, channels}, options);
    case Layout::wide_rows:
    case Layout::misaligned_rows: return at::randn({2, seq, channels + 24}, options);
    case Layout::strided_channels: return at::randn({2, channels, seq}, options);
  }
  return {};
}

at::Tensor view_of(Layout layout, const at::Tensor& source, int64_t channels) {
  switch (layout) {
    case Layout::contiguous: return source;
    case Layout::wide_rows: return source.narrow(-1, 0, channels);
    case Layout::misaligned_rows: return source.narrow(-1, 3, channels);
    case Layout::strided_channels: return source.transpose(1, 2);
  }
  return {};
}

TEST(CausalConv1dKernel, CudaKernelMatchesReference) {
  ASSERT_TRUE(cuda_kernels_built());
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // Odd channel counts take the one-channel path, multiples of 4 the packed one; T = 300 spans
    // three time tiles (the last one partial), T = 3 is shorter than K = 4.
    for (int64_t channels : {1, 7, 64, 1000, 4096}) {
      for (int64_t width : {1, 3, 4}) {
        for (int64_t seq : {3, 300}) {
          for (auto layout : {Layout::contiguous, Layout::wide_rows, Layout::misaligned_rows, Layout::strided_channels}) {
            auto source = source_for(layout, seq, channels, at::TensorOptions().device(at::kCUDA).dtype(dtype)) * 2;
            // A float32 weight, as the layer's parameter is: the op casts it to x's dtype.
            auto w = at::randn({channels, 1, width}, at::TensorOptions().device(at::kCUDA)) * 0.5;
            auto g = at::randn({2, seq, channels}, source.options());
            auto op = [&](auto conv) {
              return [&, conv](const std::vector<at::Tensor>& in) {
                return conv(view_of(layout, in[0], channels), in[1], std::nullopt);
              };
            };
            auto kernel = forward_backward(op(causal_conv1d_silu_cuda), {source, w}, g);
            auto twin = forward_backward(op(causal_conv1d_silu_reference), {source, w}, g);
            auto ref = forward_backward(op(causal_conv1d_silu_reference), {source.to(at::kDouble), w.to(at::kDouble)},
                                        g.to(at::kDouble));
            const auto what = strata::cat(dtype, " C ", channels, " K ", width, " T ", seq, " layout ",
                                          static_cast<int>(layout));
            ASSERT_TRUE(kernel.output.is_contiguous()) << what;
            testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " out");
            testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " grad_x");
            // The weight enters cast to the input's dtype, so its gradient is rounded there.
            testing::expect_as_accurate_as_twin(kernel.grads[1], twin.grads[1], ref.grads[1], what + " grad_w", dtype);
          }
        }
      }
    }
  }
}

// Packed documents on the kernels: boundaries inside a thread's run, at a run's first step, across
// the 128-step time tiles, documents of one step and shorter than K, many documents in one tile.
TEST(CausalConv1dKernel, CudaKernelMatchesReferenceWithDocuments) {
  const std::vector<std::vector<int64_t>> all_bounds{
      {0, 300}, {0, 1, 2, 3, 16, 17, 128, 129, 130, 255, 300}, {0, 7, 64, 200, 299, 300}};
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    for (int64_t channels : {7, 1000}) {
      for (int64_t width : {2, 4}) {
        for (const auto& bounds : all_bounds) {
          for (auto layout : {Layout::contiguous, Layout::wide_rows}) {
            auto source = source_for(layout, 300, channels, at::TensorOptions().device(at::kCUDA).dtype(dtype))
                              .narrow(0, 0, 1) * 2;
            auto w = at::randn({channels, 1, width}, at::TensorOptions().device(at::kCUDA)) * 0.5;
            auto g = at::randn({1, 300, channels}, source.options());
            auto cu_seqlens = at::tensor(bounds, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
            auto op = [&](auto conv) {
              return [&, conv](const std::vector<at::Tensor>& in) {
                return conv(view_of(layout, in[0], channels), in[1], cu_seqlens);
              };
            };
            auto kernel = forward_backward(op(causal_conv1d_silu_cuda), {source, w}, g);
            auto twin = forward_backward(op(causal_conv1d_silu_reference), {source, w}, g);
            auto ref = forward_backward(op(causal_conv1d_silu_reference),
                                        {source.to(at::kDouble), w.to(at::kDouble)}, g.to(at::kDouble));
            const auto what = strata::cat(dtype, " C ", channels, " K ", width, " cu_seqlens ",
                                          at::IntArrayRef(bounds), " layout ", static_cast<int>(layout));
            testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, what + " out");
            testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], what + " grad_x");
            // The weight enters cast to the input's dtype, so its gradient is rounded there.
            testing::expect_as_accurate_as_twin(kernel.grads[1], twin.grads[1], ref.grads[1], what + " grad_w", dtype);
          }
        }
      }
    }
  }
}

TEST(CausalConv1dKernel, DispatchRunsTheKernelOnCudaUpToTheMaxWidth) {
  auto x = at::randn({2, 9, 16}, at::kCUDA);
  auto w = at::randn({16, 1, 4}, at::kCUDA);
  EXPECT_TRUE(at::equal(causal_conv1d_silu(x, w), causal_conv1d_silu_cuda(x, w)));
  auto wide = at::randn({16, 1, launch::kMaxConvWidth + 1}, at::kCUDA);
  EXPECT_TRUE(at::equal(causal_conv1d_silu(x, wide), causal_conv1d_silu_reference(x, wide)));
}

// The layer's call under bf16 autocast: x a slice of in_proj's bf16 output [B, T, 1552]
// (q k v | z | b | a), the float32 parameter cast inside the op, which gets a float32 gradient.
TEST(CausalConv1dKernel, LayerCallUnderAutocastIsAsAccurateAsTheTwin) {
  const int64_t channels = 1024, projected = 1552, seq = 700;
  auto source = at::randn({2, seq, projected}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
  auto w = at::randn({channels, 1, 4}, at::TensorOptions().device(at::kCUDA)) * 0.5;
  auto g = at::randn({2, seq, channels}, source.options());
  auto op = [&](auto conv) {
    return [&, conv](const std::vector<at::Tensor>& in) {
      return conv(in[0].narrow(-1, 0, channels), in[1], std::nullopt);
    };
  };
  auto ref = forward_backward(op(causal_conv1d_silu_reference), {source.to(at::kDouble), w.to(at::kDouble)},
                              g.to(at::kDouble));
  compat::CudaAutocast autocast(at::kBFloat16);
  auto kernel = forward_backward(op(causal_conv1d_silu), {source, w}, g);
  auto twin = forward_backward(op(causal_conv1d_silu_reference), {source, w}, g);
  // The kernel's output is contiguous; the twin's is a transposed view.
  EXPECT_TRUE(kernel.output.is_contiguous());
  EXPECT_EQ(kernel.output.scalar_type(), at::kBFloat16);
  EXPECT_EQ(kernel.grads[1].scalar_type(), at::kFloat);
  testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, "out");
  testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], "grad_x");
  testing::expect_as_accurate_as_twin(kernel.grads[1], twin.grads[1], ref.grads[1], "grad_w", at::kBFloat16);
}

// The whole mixer with the kernel (float32 on CUDA) against the same mixer with the twin (float32
// on the CPU), both measured against float64: output, input gradient and the gradients of the
// parameters around the conv. 128 conv channels in rows of 200: the packed path.
TEST(CausalConv1dKernel, GatedDeltaNetWithTheKernelIsAsAccurateAsWithTheTwin) {
  auto config = strata::testing::small_config();
  strata::testing::use_small_hybrid_mixers(*config);
  config->linear_num_key_heads = 2;
  config->linear_num_value_heads = 4;
  config->linear_key_head_dim = 16;
  config->linear_value_head_dim = 16;
  config->linear_chunk_size = 64;
  auto mixers = testing::gated_delta_net_copies(config);
  mixers.kernel->to(at::kCUDA);
  mixers.reference->to(at::kDouble);

  auto hidden = at::randn({2, 300, config->hidden_size});
  auto g = at::randn({2, 300, config->hidden_size});
  auto twin = testing::mixer_forward_backward(*mixers.twin, hidden, g, at::kCPU, at::kFloat);
  auto kernel = testing::mixer_forward_backward(*mixers.kernel, hidden, g, at::kCUDA, at::kFloat);
  auto ref = testing::mixer_forward_backward(*mixers.reference, hidden, g, at::kCPU, at::kDouble);
  testing::expect_as_accurate_as_twin(kernel.output, twin.output, ref.output, "out");
  testing::expect_as_accurate_as_twin(kernel.grads[0], twin.grads[0], ref.grads[0], "grad hidden");
  for (const char* name : {"conv1d.weight", "in_proj.weight"}) {
    auto grad_of = [&](const std::shared_ptr<GatedDeltaNet>& mixer) { return mixer->named_parameters()[name].grad(); };
    testing::expect_as_accurate_as_twin(grad_of(mixers.kernel), grad_of(mixers.twin), grad_of(mixers.reference),
                                        std::string("grad ") + name);
  }
}
#endif

}  // namespace
}  // namespace strata::kernels
