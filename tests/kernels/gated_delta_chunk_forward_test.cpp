// The fused chunked gated delta rule forward (kernels/gated_delta_chunk_*.cu): when it applies and
// its entry point's errors (anywhere); on the GPU machine, the kernels against the float64
// recurrent form (odd lengths, gates near 1 and strongly decaying, beta near 0 and 1, initial and
// final states, packed documents, the layer's strided float32 q and k, key heads shared by value
// heads) and the dispatch in gated_delta_rule_chunked (fused without gradients, the
// differentiable twin with them).
#include "strata/kernels/gated_delta_chunk_forward.h"

#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gated_delta_rule_inputs.h"
#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/layers/gated_delta_rule.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

TEST(GatedDeltaChunkForward, DoesNotApplyOffCudaAndItsEntryPointSaysWhy) {
  auto in = random_rule_inputs(1, 70, 2, 128, Gates::mixed, at::TensorOptions().dtype(at::kBFloat16));
  EXPECT_FALSE(gated_delta_chunk_forward_applies(in.q, in.k, in.v, in.g, in.beta, 64, std::nullopt));
  const auto message = strata::testing::error_of(
      [&] { gated_delta_chunk_forward_cuda(in.q, in.k, in.v, in.g, in.beta, std::nullopt, {}); });
  EXPECT_NE(message.find("gated_delta_chunk_forward_cuda"), std::string::npos) << message;
  EXPECT_TRUE(message.find("no CUDA kernels") != std::string::npos ||
              message.find("expected CUDA tensors") != std::string::npos)
      << message;
}

// Off CUDA the rule keeps its LibTorch path: the same values as the recurrent form in float64.
TEST(GatedDeltaChunkForward, ChunkedRuleOffCudaStaysTheTwin) {
  at::NoGradGuard no_grad;
  auto in = random_rule_inputs(2, 70, 2, 16, Gates::mixed, at::TensorOptions().dtype(at::kDouble));
  auto chunked = gated_delta_rule_chunked(in.q, in.k, in.v, in.g, in.beta, 64, std::nullopt);
  auto recurrent = gated_delta_rule_recurrent(in.q, in.k, in.v, in.g, in.beta, std::nullopt);
  EXPECT_LT(testing::relative_error(chunked.out, recurrent.out), 1e-10);
  EXPECT_LT(testing::relative_error(chunked.final_state, recurrent.final_state), 1e-10);
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

at::TensorOptions cuda(at::ScalarType dtype) { return at::TensorOptions().device(at::kCUDA).dtype(dtype); }

// The kernels round their inputs, T, W, U, the entering states and the corrections to bfloat16
// (8 significant bits, relative 2^-9 ~ 2e-3 each) and accumulate in float32; a handful of such
// roundings compound to well under 1e-2 relative (Frobenius) on out and the final state, while
// a wrong index or formula is off by O(1). 2e-2 keeps room for the strongly gated cases, whose
// small outputs carry the same absolute error.
constexpr double kTolerance = 2e-2;

struct Case {
  int64_t seq;
  Gates gates;
  bool initial;
  at::ScalarType qk_dtype;  // the layer hands float32 q and k; flash-linear-attention's callers bf16
  at::ScalarType v_dtype = at::kBFloat16;
};

// The fused forward and the float64 recurrent form on the same (rounded) inputs.
void expect_matches_recurrence(const RuleInputs& in, const std::optional<at::Tensor>& initial,
                               const std::optional<at::Tensor>& cu_seqlens, const std::vector<int64_t>& bounds,
                               const std::string& what) {
  ASSERT_TRUE(gated_delta_chunk_forward_applies(in.q, in.k, in.v, in.g, in.beta, 64, initial)) << what;
  auto fused = gated_delta_chunk_forward_cuda(in.q, in.k, in.v, in.g, in.beta, initial, bounds);
  auto d = [](const at::Tensor& t) { return t.to(at::kDouble); };
  auto initial64 = initial ? std::optional<at::Tensor>(d(*initial)) : std::nullopt;
  auto ref = gated_delta_rule_recurrent(d(in.q), d(in.k), d(in.v), d(in.g), d(in.beta), initial64, cu_seqlens);
  EXPECT_EQ(fused.out.scalar_type(), in.v.scalar_type()) << what;
  EXPECT_EQ(fused.final_state.scalar_type(), at::kFloat) << what;
  ASSERT_EQ(fused.out.sizes(), ref.out.sizes()) << what;
  ASSERT_EQ(fused.final_state.sizes(), ref.final_state.sizes()) << what;
  EXPECT_TRUE(at::isfinite(fused.out).all().item<bool>()) << what;
  EXPECT_TRUE(at::isfinite(fused.final_state).all().item<bool>()) << what;
  EXPECT_LE(testing::relative_error(fused.out, ref.out), kTolerance) << what << " out";
  EXPECT_LE(testing::relative_error(fused.final_state, ref.final_state), kTolerance) << what << " final state";
}

TEST(GatedDeltaChunkForward, CudaKernelsMatchTheFloat64Recurrence) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  at::NoGradGuard no_grad;
  const int64_t batch = 2, heads = 3, dim = 128;
  std::vector<Case> cases;
  for (int64_t seq : {1, 63, 64, 65, 200, 1000}) cases.push_back({seq, Gates::mixed, true, at::kBFloat16});
  cases.push_back({300, Gates::slow_decay, true, at::kBFloat16});
  cases.push_back({300, Gates::strong_decay, true, at::kBFloat16});
  cases.push_back({300, Gates::slow_decay, false, at::kFloat});
  cases.push_back({130, Gates::strong_decay, false, at::kFloat});
  cases.push_back({200, Gates::mixed, true, at::kHalf, at::kHalf});
  for (const auto& c : cases) {
    auto in = random_rule_inputs(batch, c.seq, heads, dim, c.gates, cuda(at::kFloat));
    in.q = in.q.to(c.qk_dtype);
    in.k = in.k.to(c.qk_dtype);
    in.v = in.v.to(c.v_dtype);
    auto initial = c.initial ? std::optional<at::Tensor>(0.1 * at::randn({batch, heads, dim, dim}, cuda(at::kFloat)))
                             : std::nullopt;
    expect_matches_recurrence(in, initial, std::nullopt, {},
                              strata::cat("T = ", c.seq, ", gates ", static_cast<int>(c.gates), ", q/k ", c.qk_dtype,
                                          ", v ", c.v_dtype, c.initial ? ", initial state" : ""));
  }
}

TEST(GatedDeltaChunkForward, CudaKernelsRestartAtEachPackedDocument) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  at::NoGradGuard no_grad;
  const int64_t heads = 2, dim = 128;
  for (const auto& bounds : {std::vector<int64_t>{0, 1, 65, 200, 263, 500}, std::vector<int64_t>{0, 128, 129, 300}})
    for (bool with_initial : {true, false}) {
      auto in = random_rule_inputs(1, bounds.back(), heads, dim, Gates::mixed, cuda(at::kFloat));
      in.q = in.q.to(at::kBFloat16);
      in.k = in.k.to(at::kBFloat16);
      in.v = in.v.to(at::kBFloat16);
      const auto documents = static_cast<int64_t>(bounds.size()) - 1;
      auto initial = with_initial
                         ? std::optional<at::Tensor>(0.1 * at::randn({documents, heads, dim, dim}, cuda(at::kFloat)))
                         : std::nullopt;
      expect_matches_recurrence(in, initial, at::tensor(bounds, cuda(at::kLong)), bounds,
                                strata::cat("bounds ", at::IntArrayRef(bounds), with_initial ? ", initial state" : ""));
    }
}

// The layer's q and k: float32 [B, T, H, Dk] views of heads-first memory; v a slice of a wider
// projection output. Read in place, they give what contiguous copies give, bit for bit.
TEST(GatedDeltaChunkForward, CudaKernelsReadStridedInputsInPlace) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  at::NoGradGuard no_grad;
  const int64_t batch = 2, seq = 150, heads = 4, dim = 128;
  auto in = random_rule_inputs(batch, seq, heads, dim, Gates::mixed, cuda(at::kFloat));
  auto heads_first = [](const at::Tensor& t) { return t.transpose(1, 2).contiguous().transpose(1, 2); };
  auto wide = at::randn({batch, seq, heads, 3 * dim}, cuda(at::kBFloat16));
  wide.narrow(-1, dim, dim).copy_(in.v);
  RuleInputs strided{heads_first(in.q), heads_first(in.k), wide.narrow(-1, dim, dim), in.g, in.beta};
  RuleInputs packed{in.q, in.k, in.v.to(at::kBFloat16), in.g, in.beta};
  auto a = gated_delta_chunk_forward_cuda(strided.q, strided.k, strided.v, strided.g, strided.beta, std::nullopt, {});
  auto b = gated_delta_chunk_forward_cuda(packed.q, packed.k, packed.v, packed.g, packed.beta, std::nullopt, {});
  EXPECT_TRUE(at::equal(a.out, b.out));
  EXPECT_TRUE(at::equal(a.final_state, b.final_state));
}

// Grouped value heads (Qwen3-Next: 16 key heads for 32 value heads): q and k with one head per
// group give, bit for bit, what their copies repeated to every value head give (the kernels read
// the same rows), and match the float64 recurrence, packed or not.
TEST(GatedDeltaChunkForward, CudaKernelsReadKeyHeadsSharedByValueHeads) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  at::NoGradGuard no_grad;
  const int64_t heads = 6, dim = 128;
  for (int64_t key_heads : {3, 1})
    for (const auto& bounds : {std::vector<int64_t>{}, std::vector<int64_t>{0, 70, 200}}) {
      const std::string what = strata::cat(key_heads, " key heads", bounds.empty() ? "" : ", packed");
      auto in = random_rule_inputs(1, 200, heads, dim, Gates::mixed, cuda(at::kFloat));
      in.q = in.q.narrow(2, 0, key_heads).to(at::kBFloat16);
      in.k = in.k.narrow(2, 0, key_heads).to(at::kBFloat16);
      in.v = in.v.to(at::kBFloat16);
      const auto states = bounds.empty() ? int64_t{1} : static_cast<int64_t>(bounds.size()) - 1;
      const auto initial = 0.1 * at::randn({states, heads, dim, dim}, cuda(at::kFloat));
      const auto cu_seqlens =
          bounds.empty() ? std::nullopt : std::optional<at::Tensor>(at::tensor(bounds, cuda(at::kLong)));
      expect_matches_recurrence(in, initial, cu_seqlens, bounds, what);
      const auto repeated = [&](const at::Tensor& t) { return t.repeat_interleave(heads / key_heads, 2); };
      auto grouped = gated_delta_chunk_forward_cuda(in.q, in.k, in.v, in.g, in.beta, initial, bounds);
      auto copies = gated_delta_chunk_forward_cuda(repeated(in.q), repeated(in.k), in.v, in.g, in.beta, initial, bounds);
      EXPECT_TRUE(at::equal(grouped.out, copies.out)) << what;
      EXPECT_TRUE(at::equal(grouped.final_state, copies.final_state)) << what;
    }
}

// g and beta are read in their own dtypes (no conversion kernel): bfloat16 and float16 gates and
// beta give what the same values widened to float32 give, bit for bit, with and without the
// arrays kept for the backward (which only add writes).
TEST(GatedDeltaChunkForward, CudaKernelsReadGatesAndBetaInTheirDtypeAndKeepingChangesNoValue) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  at::NoGradGuard no_grad;
  const int64_t batch = 1, seq = 150, heads = 2, dim = 128;
  auto in = random_rule_inputs(batch, seq, heads, dim, Gates::mixed, cuda(at::kFloat));
  in.v = in.v.to(at::kBFloat16);
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    const auto g = in.g.to(dtype), beta = in.beta.to(dtype);
    auto widened =
        gated_delta_chunk_forward_cuda(in.q, in.k, in.v, g.to(at::kFloat), beta.to(at::kFloat), std::nullopt, {});
    for (bool keep : {false, true}) {
      const auto what = strata::cat("g and beta ", dtype, keep ? ", kept" : "");
      auto own = gated_delta_chunk_forward_cuda(in.q, in.k, in.v, g, beta, std::nullopt, {}, keep);
      EXPECT_TRUE(at::equal(own.out, widened.out)) << what;
      EXPECT_TRUE(at::equal(own.final_state, widened.final_state)) << what;
    }
  }
}

// gated_delta_rule_chunked runs the fused forward when nothing records a gradient, and the
// differentiable path (whose output requires grad) when something does; both agree.
TEST(GatedDeltaChunkForward, ChunkedRuleDispatchesOnGradients) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  const int64_t batch = 1, seq = 200, heads = 2, dim = 128;
  auto in = random_rule_inputs(batch, seq, heads, dim, Gates::mixed, cuda(at::kFloat));
  in.v = in.v.to(at::kBFloat16);
  auto initial = 0.1 * at::randn({batch, heads, dim, dim}, cuda(at::kFloat));
  auto fused = gated_delta_chunk_forward_cuda(in.q, in.k, in.v, in.g, in.beta, initial, {});
  at::Tensor no_grad_out, no_grad_state;
  {
    at::NoGradGuard no_grad;
    auto rule = gated_delta_rule_chunked(in.q, in.k, in.v, in.g, in.beta, 64, initial);
    no_grad_out = rule.out;
    no_grad_state = rule.final_state;
  }
  EXPECT_TRUE(at::equal(no_grad_out, fused.out));
  EXPECT_TRUE(at::equal(no_grad_state, fused.final_state));
  auto q = in.q.clone().requires_grad_(true);
  auto twin = gated_delta_rule_chunked(q, in.k, in.v, in.g, in.beta, 64, initial);
  EXPECT_TRUE(twin.out.requires_grad());
  EXPECT_LE(testing::relative_error(twin.out.detach(), fused.out), kTolerance);
  EXPECT_LE(testing::relative_error(twin.final_state.detach(), fused.final_state), kTolerance);
}
#endif

}  // namespace
}  // namespace strata::kernels
