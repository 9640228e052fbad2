// The decoding step of the gated delta rule: its twin against the recurrent form in float64
// (values, state, every gradient) and in float32 against float64, the dispatch off CUDA, the
// errors; on the GPU machine, the fused kernel against the twin and float64 over several steps.
#include "strata/kernels/gated_delta_rule_step.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/layers/gated_delta_rule.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

struct StepInputs {
  at::Tensor q, k, v, g, beta, state;
  std::vector<at::Tensor> all() const { return {q, k, v, g, beta, state}; }
};

const char* kNames[] = {"q", "k", "v", "g", "beta", "state"};

// How strongly the gates act: alpha = exp(g) and beta both spread over (0, 1), both near 1, or
// both near 0.
enum class Gates { mixed, near_one, near_zero };

std::string gates_name(Gates gates) {
  return gates == Gates::near_one ? "gates near 1" : gates == Gates::near_zero ? "gates near 0" : "mixed gates";
}

// Inputs as the mixer hands them to the step: unit-norm q (scaled by 1/sqrt(Dk)) and k, a state
// of unit-scale entries.
StepInputs random_step_inputs(int64_t batch, int64_t heads, int64_t key_dim, int64_t value_dim, Gates gates,
                              at::TensorOptions options) {
  auto unit = [&](int64_t dim) {
    auto x = at::randn({batch, heads, dim}, options);
    return x / x.norm(2, -1, /*keepdim=*/true);
  };
  const double gate_scale = gates == Gates::near_one ? 1e-4 : gates == Gates::near_zero ? 30.0 : 1.0;
  const double beta_shift = gates == Gates::near_one ? 8.0 : gates == Gates::near_zero ? -8.0 : 0.0;
  return {unit(key_dim) / std::sqrt(static_cast<double>(key_dim)), unit(key_dim),
          at::randn({batch, heads, value_dim}, options),
          -gate_scale * at::exp(at::randn({batch, heads}, options)) * at::softplus(at::randn({batch, heads}, options)),
          at::sigmoid(at::randn({batch, heads}, options) + beta_shift),
          at::randn({batch, heads, key_dim, value_dim}, options)};
}

StepInputs as_dtype(const StepInputs& in, at::ScalarType dtype) {
  return {in.q.to(dtype), in.k.to(dtype), in.v.to(dtype), in.g.to(dtype), in.beta.to(dtype), in.state.to(dtype)};
}

// The twin's out and new state and every input's gradient for random output weights.
struct StepRun {
  at::Tensor out, state;
  std::vector<at::Tensor> grads;
};

StepRun run_with_gradients(const StepInputs& in, const std::function<DeltaRuleStep(const std::vector<at::Tensor>&)>& step,
                           const at::Tensor& out_weight, const at::Tensor& state_weight) {
  std::vector<at::Tensor> leaves;
  for (const auto& t : in.all()) leaves.push_back(t.detach().clone().requires_grad_(true));
  auto result = step(leaves);
  auto loss = (result.out.to(at::kDouble) * out_weight).sum() + (result.state.to(at::kDouble) * state_weight).sum();
  return {result.out, result.state, torch::autograd::grad({loss}, leaves)};
}

DeltaRuleStep twin(const std::vector<at::Tensor>& x) {
  return gated_delta_rule_step_reference(x[0], x[1], x[2], x[3], x[4], x[5]);
}

// The recurrent form over one token, which shares no code with the step.
DeltaRuleStep recurrent(const std::vector<at::Tensor>& x) {
  auto one_token = [](const at::Tensor& t) { return t.unsqueeze(1); };
  auto rule = gated_delta_rule_recurrent(one_token(x[0]), one_token(x[1]), one_token(x[2]), one_token(x[3]),
                                         one_token(x[4]), x[5]);
  return {rule.out.squeeze(1), rule.final_state};
}

struct Shape {
  int64_t batch, heads, key_dim, value_dim;
};

// Qwen3-Next's heads, a key wider than the kernel's rows per thread cover in one step, odd sizes.
const std::vector<Shape> kShapes{{1, 32, 128, 128}, {3, 2, 256, 40}, {2, 3, 7, 33}, {2, 4, 64, 1}};

TEST(GatedDeltaRuleStep, ReferenceEqualsTheRecurrentFormInFloat64) {
  at::manual_seed(11);
  const auto options = at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
  for (const auto& shape : kShapes)
    for (auto gates : {Gates::mixed, Gates::near_one, Gates::near_zero}) {
      SCOPED_TRACE(strata::cat("B ", shape.batch, " H ", shape.heads, " Dk ", shape.key_dim, " Dv ", shape.value_dim,
                               ", ", gates_name(gates)));
      auto in = random_step_inputs(shape.batch, shape.heads, shape.key_dim, shape.value_dim, gates, options);
      auto out_weight = at::randn({shape.batch, shape.heads, shape.value_dim}, options);
      auto state_weight = at::randn_like(in.state);
      auto step = run_with_gradients(in, twin, out_weight, state_weight);
      auto expected = run_with_gradients(in, recurrent, out_weight, state_weight);
      EXPECT_LT(testing::relative_error(step.out, expected.out), 1e-13);
      EXPECT_LT(testing::relative_error(step.state, expected.state), 1e-13);
      for (size_t i = 0; i < step.grads.size(); ++i)
        EXPECT_LT(testing::relative_error(step.grads[i], expected.grads[i]), 1e-12) << "d " << kNames[i];
    }
}

// float32 (and bf16 values, as a bf16 model's step gets them) against the float64 twin: the
// step's few dot products of Dk terms keep float32's precision.
TEST(GatedDeltaRuleStep, ReferenceInFloat32IsAccurate) {
  at::manual_seed(12);
  const auto device = strata::testing::test_device();
  for (const auto& shape : kShapes)
    for (auto gates : {Gates::mixed, Gates::near_one, Gates::near_zero}) {
      SCOPED_TRACE(strata::cat("B ", shape.batch, " H ", shape.heads, " Dk ", shape.key_dim, " Dv ", shape.value_dim,
                               ", ", gates_name(gates)));
      auto in = random_step_inputs(shape.batch, shape.heads, shape.key_dim, shape.value_dim, gates,
                                   at::TensorOptions().device(device).dtype(at::kDouble));
      auto out_weight = at::randn({shape.batch, shape.heads, shape.value_dim}, in.q.options());
      auto state_weight = at::randn_like(in.state);
      auto expected = run_with_gradients(in, twin, out_weight, state_weight);
      auto step = run_with_gradients(as_dtype(in, at::kFloat), twin, out_weight, state_weight);
      EXPECT_EQ(step.state.scalar_type(), at::kFloat);
      EXPECT_LT(testing::relative_error(step.out, expected.out), 1e-5);
      EXPECT_LT(testing::relative_error(step.state, expected.state), 1e-6);
      for (size_t i = 0; i < step.grads.size(); ++i)
        EXPECT_LT(testing::relative_error(step.grads[i], expected.grads[i]), 1e-5) << "d " << kNames[i];

      auto bf16 = as_dtype(in, at::kFloat);
      bf16.v = bf16.v.to(at::kBFloat16);
      bf16.beta = bf16.beta.to(at::kBFloat16);
      auto rounded = in;  // the float64 step on the bf16-rounded values
      rounded.v = bf16.v.to(at::kDouble);
      rounded.beta = bf16.beta.to(at::kDouble);
      auto bf16_step = twin(bf16.all());
      EXPECT_EQ(bf16_step.out.scalar_type(), at::kBFloat16);
      EXPECT_LT(testing::relative_error(bf16_step.out, twin(rounded.all()).out), 1e-2);
      EXPECT_LT(testing::relative_error(bf16_step.state, twin(rounded.all()).state), 1e-6);
    }
}

// Off CUDA the step runs the twin and writes its new state into `state` in place (a CUDA graph
// over the step needs the same memory at each replay); a step that widens the state (float64
// inputs, float32 state) or that autograd records rebinds `state` instead.
TEST(GatedDeltaRuleStep, DispatchRunsTheTwinOffCudaAndKeepsTheStateInPlace) {
  auto in = random_step_inputs(2, 3, 8, 6, Gates::mixed, at::TensorOptions());
  auto state = in.state.clone();
  const auto* storage = state.data_ptr();
  EXPECT_FALSE(gated_delta_rule_step_kernel_applies(in.q, in.k, in.v, in.g, in.beta, state));
  auto out = gated_delta_rule_step_(in.q, in.k, in.v, in.g, in.beta, state);
  auto expected = twin(in.all());
  EXPECT_TRUE(at::equal(out, expected.out));
  EXPECT_TRUE(at::equal(state, expected.state));
  EXPECT_EQ(state.data_ptr(), storage);

  auto wide = as_dtype(in, at::kDouble);
  auto narrow_state = in.state.clone();
  gated_delta_rule_step_(wide.q, wide.k, wide.v, wide.g, wide.beta, narrow_state);
  EXPECT_EQ(narrow_state.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(narrow_state, twin(wide.all()).state));

  auto tracked_v = in.v.clone().requires_grad_(true);
  auto tracked_state = in.state.clone();
  gated_delta_rule_step_(in.q, in.k, tracked_v, in.g, in.beta, tracked_state);
  EXPECT_TRUE(tracked_state.requires_grad());
  // Against the formula by its largest entry: a sum of k near zero makes an entry-wise tolerance
  // fail on the last bits of float32 (it did, about one run in 150).
  EXPECT_LT(testing::relative_error(torch::autograd::grad({tracked_state.sum()}, {tracked_v})[0],
                                    in.k.sum(-1, /*keepdim=*/true) * in.beta.unsqueeze(-1) * at::ones_like(in.v)),
            1e-5);
}

TEST(GatedDeltaRuleStep, RejectsInputsThatDoNotFitTheState) {
  auto in = random_step_inputs(2, 3, 8, 6, Gates::mixed, at::TensorOptions());
  auto expect_error = [](const std::function<void()>& action, const std::string& expected) {
    const auto message = strata::testing::error_of(action);
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  expect_error([&] { gated_delta_rule_step_reference(in.q, in.k, in.v.narrow(-1, 0, 5), in.g, in.beta, in.state); },
               "gated_delta_rule_step_reference: v must be [B, H, Dv] = [2, 3, 6] (from the state), got shape [2, 3, 5]");
  expect_error([&] { gated_delta_rule_step_reference(in.q, in.k.unsqueeze(1), in.v, in.g, in.beta, in.state); },
               "k must be [B, H, Dk] = [2, 3, 8] (from the state), got shape [2, 1, 3, 8]");
  expect_error([&] { gated_delta_rule_step_reference(in.q, in.k, in.v, in.g, in.beta.unsqueeze(-1), in.state); },
               "beta must be [B, H] = [2, 3] (from the state), got shape [2, 3, 1]");
  expect_error([&] { gated_delta_rule_step_reference(in.q, in.k, in.v, in.g, in.beta, in.state[0]); },
               "state must be [B, H, Dk, Dv], got shape [3, 8, 6]");
  const auto message =
      strata::testing::error_of([&] { gated_delta_rule_step_cuda(in.q, in.k, in.v, in.g, in.beta, in.state); });
  EXPECT_NE(message.find("gated_delta_rule_step_cuda"), std::string::npos) << message;
  EXPECT_TRUE(message.find("no CUDA kernels") != std::string::npos || message.find("expected CUDA tensors") != std::string::npos)
      << message;
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

at::TensorOptions cuda(at::ScalarType dtype) { return at::TensorOptions().device(at::kCUDA).dtype(dtype); }

// Four steps in a row: the kernel advancing its state in place, the twin in the same dtypes, and
// the float64 twin; each step's out and the state after it as accurate as the twin's. q and k are
// read from heads-first buffers and v from a slice of wider rows, as the layer hands them over.
TEST(GatedDeltaRuleStepKernel, MatchesTheTwinAndFloat64OverSeveralSteps) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  at::manual_seed(13);
  for (const auto& shape : kShapes)
    for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf})
      for (auto gates : {Gates::mixed, Gates::near_one, Gates::near_zero}) {
        const auto what = strata::cat("B ", shape.batch, " H ", shape.heads, " Dk ", shape.key_dim, " Dv ",
                                      shape.value_dim, " ", dtype, ", ", gates_name(gates));
        auto start = random_step_inputs(shape.batch, shape.heads, shape.key_dim, shape.value_dim, gates,
                                        cuda(at::kFloat));
        auto kernel_state = start.state.clone();
        const auto* storage = kernel_state.data_ptr();
        auto twin_state = start.state.clone();
        auto reference_state = start.state.to(at::kDouble);
        for (int step = 0; step < 4; ++step) {
          auto in = random_step_inputs(shape.batch, shape.heads, shape.key_dim, shape.value_dim, gates, cuda(at::kFloat));
          auto q = in.q.transpose(0, 1).contiguous().transpose(0, 1);
          auto k = in.k.transpose(0, 1).contiguous().transpose(0, 1);
          auto v = at::cat({in.v, in.v}, -1).to(dtype).narrow(-1, shape.value_dim, shape.value_dim);
          auto beta = in.beta.to(dtype);
          ASSERT_TRUE(gated_delta_rule_step_kernel_applies(q, k, v, in.g, beta, kernel_state)) << what;
          auto out = gated_delta_rule_step_cuda(q, k, v, in.g, beta, kernel_state);
          auto expected = gated_delta_rule_step_reference(q, k, v, in.g, beta, twin_state);
          auto reference = gated_delta_rule_step_reference(q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble),
                                                           in.g.to(at::kDouble), beta.to(at::kDouble), reference_state);
          twin_state = expected.state;
          reference_state = reference.state;
          const auto at_step = strata::cat(what, ", step ", step);
          testing::expect_as_accurate_as_twin(out, expected.out, reference.out, at_step + " out");
          testing::expect_as_accurate_as_twin(kernel_state, twin_state, reference_state, at_step + " state");
        }
        EXPECT_EQ(kernel_state.data_ptr(), storage) << what << ": the state was not advanced in place";
      }
}

// beta in float32 beside bf16 values (a caller's mix): both widen to float32, out rounds to bf16.
TEST(GatedDeltaRuleStepKernel, TakesBetaInAnotherDtypeThanTheValues) {
  auto in = random_step_inputs(2, 4, 128, 64, Gates::mixed, cuda(at::kFloat));
  auto v = in.v.to(at::kBFloat16);
  auto state = in.state.clone();
  auto out = gated_delta_rule_step_cuda(in.q, in.k, v, in.g, in.beta, state);
  auto expected = gated_delta_rule_step_reference(in.q, in.k, v, in.g, in.beta, in.state);
  auto reference = gated_delta_rule_step_reference(in.q.to(at::kDouble), in.k.to(at::kDouble), v.to(at::kDouble),
                                                   in.g.to(at::kDouble), in.beta.to(at::kDouble),
                                                   in.state.to(at::kDouble));
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  testing::expect_as_accurate_as_twin(out, expected.out, reference.out, "out");
  testing::expect_as_accurate_as_twin(state, expected.state, reference.state, "state");
}

TEST(GatedDeltaRuleStepKernel, AppliesWithoutGradientsWithinItsSizes) {
  auto in = random_step_inputs(2, 4, 128, 64, Gates::mixed, cuda(at::kFloat));
  auto applies = [](const StepInputs& x) { return gated_delta_rule_step_kernel_applies(x.q, x.k, x.v, x.g, x.beta, x.state); };
  EXPECT_TRUE(applies(in));
  auto wide_key = random_step_inputs(2, 4, 257, 64, Gates::mixed, cuda(at::kFloat));
  EXPECT_FALSE(applies(wide_key));
  auto float64_state = in;
  float64_state.state = in.state.to(at::kDouble);
  EXPECT_FALSE(applies(float64_state));
  auto strided_state = in;
  strided_state.state = in.state.transpose(2, 3).contiguous().transpose(2, 3);
  EXPECT_FALSE(applies(strided_state));
  auto tracked = in;
  tracked.v = in.v.clone().requires_grad_(true);
  EXPECT_FALSE(applies(tracked));
  {
    at::NoGradGuard no_grad;
    EXPECT_TRUE(applies(tracked));
  }
}

// On CUDA the dispatch runs the kernel: the same state tensor, advanced.
TEST(GatedDeltaRuleStepKernel, DispatchAdvancesTheStateInPlace) {
  auto in = random_step_inputs(1, 32, 128, 128, Gates::mixed, cuda(at::kFloat));
  auto state = in.state.clone();
  const auto* storage = state.data_ptr();
  auto out = gated_delta_rule_step_(in.q, in.k, in.v, in.g, in.beta, state);
  auto expected = gated_delta_rule_step_reference(in.q, in.k, in.v, in.g, in.beta, in.state);
  EXPECT_EQ(state.data_ptr(), storage);
  EXPECT_LT(testing::relative_error(out, expected.out), 1e-5);
  EXPECT_LT(testing::relative_error(state, expected.state), 1e-6);
}

#endif

}  // namespace
}  // namespace strata::kernels
