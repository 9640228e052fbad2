// The fused chunked gated delta rule backward (kernels/gated_delta_chunk_backward*.cu) and its
// autograd Function: when training dispatches to it and its entry points' errors (anywhere); on
// the GPU machine, every input gradient against the float64 twin's (the LibTorch chunked path on
// float64 copies) for odd lengths, gates near 1 and strongly decaying, beta near 0 and 1, with
// and without initial and final states, packed documents, key heads shared by value heads; the
// dispatch in gated_delta_rule_chunked under STRATA_FUSED_GDN_BACKWARD=1; the refusal of a double
// backward.
#include "strata/kernels/gated_delta_chunk_backward.h"

#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gated_delta_rule_inputs.h"
#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/kernels/gated_delta_chunk_training.h"
#include "strata/layers/gated_delta_rule.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

// Sets an environment variable for one scope, restoring what was there.
class ScopedEnv {
 public:
  // value nullptr unsets the variable.
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(GatedDeltaChunkBackward, OnUnlessSwitchedOffAndNeverOffCuda) {
  auto in = random_rule_inputs(1, 70, 2, 128, Gates::mixed, at::TensorOptions().dtype(at::kBFloat16));
  in.q.requires_grad_(true);
  {
    ScopedEnv off("STRATA_FUSED_GDN_BACKWARD", "0");
    EXPECT_FALSE(gated_delta_chunk_fused_backward_enabled());
  }
  {
    ScopedEnv unset("STRATA_FUSED_GDN_BACKWARD", nullptr);
    EXPECT_TRUE(gated_delta_chunk_fused_backward_enabled());
  }
  ScopedEnv on("STRATA_FUSED_GDN_BACKWARD", "1");
  EXPECT_TRUE(gated_delta_chunk_fused_backward_enabled());
  EXPECT_FALSE(gated_delta_chunk_training_applies(in.q, in.k, in.v, in.g, in.beta, 64, std::nullopt));
  const auto message = strata::testing::error_of(
      [&] { gated_delta_chunk_backward_cuda(in.q, in.k, in.v, in.g, in.beta, std::nullopt, {}, in.v, std::nullopt); });
  EXPECT_NE(message.find("gated_delta_chunk_backward_cuda"), std::string::npos) << message;
  EXPECT_TRUE(message.find("no CUDA kernels") != std::string::npos ||
              message.find("expected CUDA tensors") != std::string::npos)
      << message;
  // Off CUDA, training keeps the twin even with the switch on: gradients flow as before.
  auto rule = gated_delta_rule_chunked(in.q, in.k, in.v, in.g, in.beta, 64, std::nullopt);
  ASSERT_TRUE(rule.out.requires_grad());
  EXPECT_EQ(rule.out.grad_fn()->name().find("GatedDeltaChunkFunction"), std::string::npos);
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

at::TensorOptions cuda(at::ScalarType dtype) { return at::TensorOptions().device(at::kCUDA).dtype(dtype); }

// The kernels round q, k, v and dO, and hand T, W, delta, the states S and dH, d_delta and the
// gradients pass's square matrices (X, dT, dT T^T, Z) over in bfloat16 (relative 2^-9 ~ 2e-3
// each), accumulating in float32; a few such roundings chained through products stay well under
// 1e-2 relative (Frobenius) on every gradient, while a wrong index, sign or formula is off by
// O(1). 2e-2, as the forward's tests, keeps room for the strongly gated cases.
constexpr double kTolerance = 2e-2;

struct Case {
  int64_t seq;
  Gates gates;
  bool initial;
  at::ScalarType qk_dtype = at::kBFloat16;
};

// The gradients of sum(out o d_out) + sum(final_state o d_final) for q, k, v, g, beta and (when
// given) the initial state, with `rule` run on leaves made from the inputs.
using Rule = std::function<DeltaRuleOutput(const std::vector<at::Tensor>&)>;

std::vector<at::Tensor> gradients(const Rule& rule, const std::vector<at::Tensor>& inputs, const at::Tensor& d_out,
                                  const std::optional<at::Tensor>& d_final) {
  std::vector<at::Tensor> leaves;
  for (const auto& t : inputs) leaves.push_back(t.detach().clone().requires_grad_(true));
  auto result = rule(leaves);
  auto loss = (result.out.to(at::kDouble) * d_out.to(at::kDouble)).sum();
  if (d_final) loss = loss + (result.final_state.to(at::kDouble) * d_final->to(at::kDouble)).sum();
  return torch::autograd::grad({loss}, leaves);
}

// The fused training path's gradients against the float64 twin's on the same (rounded) inputs.
void expect_gradients_match_twin(const RuleInputs& in, const std::optional<at::Tensor>& initial,
                                 const std::optional<at::Tensor>& cu_seqlens, const std::vector<int64_t>& bounds,
                                 const std::string& what) {
  std::vector<at::Tensor> inputs{in.q, in.k, in.v, in.g, in.beta};
  if (initial) inputs.push_back(*initial);
  const auto d_out = at::randn(in.v.sizes(), cuda(at::kFloat)).to(in.v.scalar_type());
  const auto d_final =
      initial ? std::optional<at::Tensor>(0.1 * at::randn(initial->sizes(), cuda(at::kFloat))) : std::nullopt;
  const auto initial_of = [&](const std::vector<at::Tensor>& x) {
    return x.size() > 5 ? std::optional<at::Tensor>(x[5]) : std::nullopt;
  };
  {
    at::NoGradGuard no_grad;  // the fused forward takes them, so the training path does
    ASSERT_TRUE(gated_delta_chunk_forward_applies(in.q, in.k, in.v, in.g, in.beta, 64, initial)) << what;
  }
  auto fused = gradients(
      [&](const std::vector<at::Tensor>& x) {
        auto r = gated_delta_chunk_training(x[0], x[1], x[2], x[3], x[4], initial_of(x), bounds);
        return DeltaRuleOutput{r.out, r.final_state};
      },
      inputs, d_out, d_final);
  std::vector<at::Tensor> inputs64;
  for (const auto& t : inputs) inputs64.push_back(t.to(at::kDouble));
  auto twin = gradients(
      [&](const std::vector<at::Tensor>& x) {
        return gated_delta_rule_chunked(x[0], x[1], x[2], x[3], x[4], 64, initial_of(x), cu_seqlens);
      },
      inputs64, d_out, d_final);
  const char* names[] = {"dq", "dk", "dv", "dg", "dbeta", "d_initial_state"};
  for (size_t i = 0; i < fused.size(); ++i) {
    EXPECT_EQ(fused[i].scalar_type(), inputs[i].scalar_type()) << what << " " << names[i];
    EXPECT_TRUE(at::isfinite(fused[i]).all().item<bool>()) << what << " " << names[i];
    // dg vanishes for a single token without an initial state (nothing decays): the twin's is
    // rounding noise there, so the fused one is held to the absolute size of such noise.
    if (twin[i].norm().item<double>() < 1e-9)
      EXPECT_LE(fused[i].to(at::kDouble).norm().item<double>(), 1e-6) << what << " " << names[i];
    else
      EXPECT_LE(testing::relative_error(fused[i], twin[i]), kTolerance) << what << " " << names[i];
  }
}

TEST(GatedDeltaChunkBackward, CudaGradientsMatchTheFloat64Twin) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  const int64_t batch = 2, heads = 3, dim = 128;
  std::vector<Case> cases;
  for (int64_t seq : {1, 63, 64, 65, 200, 1000}) {
    cases.push_back({seq, Gates::mixed, true});
    cases.push_back({seq, Gates::slow_decay, false});
    cases.push_back({seq, Gates::strong_decay, true});
  }
  cases.push_back({130, Gates::mixed, true, at::kFloat});  // the layer hands float32 q and k
  for (const auto& c : cases) {
    auto in = random_rule_inputs(batch, c.seq, heads, dim, c.gates, cuda(at::kFloat));
    in.q = in.q.to(c.qk_dtype);
    in.k = in.k.to(c.qk_dtype);
    in.v = in.v.to(at::kBFloat16);
    auto initial = c.initial ? std::optional<at::Tensor>(0.1 * at::randn({batch, heads, dim, dim}, cuda(at::kFloat)))
                             : std::nullopt;
    expect_gradients_match_twin(in, initial, std::nullopt, {},
                                strata::cat("T = ", c.seq, ", gates ", static_cast<int>(c.gates), ", q/k ", c.qk_dtype,
                                            c.initial ? ", initial state" : ""));
  }
}

TEST(GatedDeltaChunkBackward, CudaGradientsRestartAtEachPackedDocument) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
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
      expect_gradients_match_twin(
          in, initial, at::tensor(bounds, cuda(at::kLong)), bounds,
          strata::cat("bounds ", at::IntArrayRef(bounds), with_initial ? ", initial state" : ""));
    }
}

// Grouped value heads: dq and dk per key head are the sums over the value heads that read it, as
// the float64 twin (which repeats the key heads) has them; bf16 and float32 q and k, packed or not.
TEST(GatedDeltaChunkBackward, CudaGradientsOfKeyHeadsSharedByValueHeads) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  const int64_t heads = 4, key_heads = 2, dim = 128;
  for (auto qk_dtype : {at::kBFloat16, at::kFloat})
    for (const auto& bounds : {std::vector<int64_t>{}, std::vector<int64_t>{0, 65, 200}}) {
      auto in = random_rule_inputs(1, 200, heads, dim, Gates::mixed, cuda(at::kFloat));
      in.q = in.q.narrow(2, 0, key_heads).to(qk_dtype);
      in.k = in.k.narrow(2, 0, key_heads).to(qk_dtype);
      in.v = in.v.to(at::kBFloat16);
      const auto states = bounds.empty() ? int64_t{1} : static_cast<int64_t>(bounds.size()) - 1;
      const auto cu_seqlens =
          bounds.empty() ? std::nullopt : std::optional<at::Tensor>(at::tensor(bounds, cuda(at::kLong)));
      expect_gradients_match_twin(in, 0.1 * at::randn({states, heads, dim, dim}, cuda(at::kFloat)), cu_seqlens, bounds,
                                  strata::cat("q/k ", qk_dtype, bounds.empty() ? "" : ", packed"));
    }
}

// With the switch on, gated_delta_rule_chunked trains on the Function; with it off, on the twin.
// A double backward through the Function is refused with a message saying so.
TEST(GatedDeltaChunkBackward, ChunkedRuleDispatchesOnTheSwitch) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  auto in = random_rule_inputs(1, 100, 2, 128, Gates::mixed, cuda(at::kFloat));
  in.v = in.v.to(at::kBFloat16);
  auto q = in.q.clone().requires_grad_(true);
  {
    ScopedEnv off("STRATA_FUSED_GDN_BACKWARD", "0");
    auto twin = gated_delta_rule_chunked(q, in.k, in.v, in.g, in.beta, 64, std::nullopt);
    EXPECT_EQ(twin.out.grad_fn()->name().find("GatedDeltaChunkFunction"), std::string::npos);
  }
  ScopedEnv on("STRATA_FUSED_GDN_BACKWARD", "1");
  auto fused = gated_delta_rule_chunked(q, in.k, in.v, in.g, in.beta, 64, std::nullopt);
  ASSERT_TRUE(fused.out.requires_grad());
  EXPECT_NE(fused.out.grad_fn()->name().find("GatedDeltaChunkFunction"), std::string::npos)
      << fused.out.grad_fn()->name();
  auto loss = fused.out.to(at::kFloat).square().sum();
  const auto message = strata::testing::error_of(
      [&] { torch::autograd::grad({loss}, {q}, {}, /*retain_graph=*/true, /*create_graph=*/true); });
  EXPECT_NE(message.find("double backward"), std::string::npos) << message;
}
#endif

}  // namespace
}  // namespace strata::kernels
