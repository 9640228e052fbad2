// The chunked delta rule's state hand-off: the scan's twin against the recurrence, the
// hand-written backward against autograd through the twin, and the shape checks. The CUDA
// kernel against the twin is in tests/kernels/chunk_state_scan_test.cpp.
#include "strata/layers/delta_rule_chunk_states.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace strata {
namespace {

at::TensorOptions float64_options() {
  return at::TensorOptions().device(strata::testing::test_device()).dtype(at::kDouble);
}

struct StatesInputs {
  at::Tensor U, W, k_to_end, chunk_decay, initial;
  std::vector<at::Tensor> all() const { return {U, W, k_to_end, chunk_decay, initial}; }
};

StatesInputs random_states_inputs(int64_t chunks, int64_t chunk, int64_t key_dim, int64_t value_dim,
                                  at::TensorOptions options) {
  const int64_t batch = 2, heads = 3;
  return {at::randn({batch, heads, chunks, chunk, value_dim}, options),
          at::randn({batch, heads, chunks, chunk, key_dim}, options) * 0.3,
          at::randn({batch, heads, chunks, chunk, key_dim}, options) * 0.3,
          at::rand({batch, heads, chunks}, options),
          at::randn({batch, heads, key_dim, value_dim}, options)};
}

// S_{n+1} = decay_n S_n + K_n^T (U_n - W_n S_n), one (sequence, head) and chunk at a time.
TEST(DeltaRuleChunkStates, FollowsTheStateRecurrence) {
  auto in = random_states_inputs(4, 3, 5, 2, float64_options());
  auto out = delta_rule_chunk_states(in.U, in.W, in.k_to_end, in.chunk_decay, in.initial);
  ASSERT_EQ(out.entering.sizes(), (at::IntArrayRef{2, 3, 4, 5, 2}));
  ASSERT_EQ(out.delta.sizes(), in.U.sizes());
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h) {
      auto state = in.initial[b][h];
      for (int64_t n = 0; n < 4; ++n) {
        EXPECT_TRUE(at::allclose(out.entering[b][h][n], state, 1e-12, 1e-12)) << b << " " << h << " " << n;
        auto delta = in.U[b][h][n] - at::mm(in.W[b][h][n], state);
        EXPECT_TRUE(at::allclose(out.delta[b][h][n], delta, 1e-12, 1e-12)) << b << " " << h << " " << n;
        state = in.chunk_decay[b][h][n] * state + at::mm(in.k_to_end[b][h][n].t(), delta);
      }
      EXPECT_TRUE(at::allclose(out.final_state[b][h], state, 1e-12, 1e-12)) << b << " " << h;
    }
}

// The backward is a second scan run from the last chunk; autograd through the forward twin's
// loop is the reference. Each subset of outputs feeds the loss (the others' gradients are zero).
TEST(DeltaRuleChunkStates, HandWrittenBackwardMatchesAutograd) {
  auto in = random_states_inputs(5, 4, 6, 3, float64_options());
  const std::vector<std::vector<bool>> used = {{true, true, true}, {false, true, false}, {false, false, true}};
  for (const auto& use : used) {
    const auto what = strata::cat("outputs used: ", use[0], use[1], use[2]);
    std::vector<at::Tensor> weights;
    for (const auto& shape : {in.initial.unsqueeze(2).expand({-1, -1, 5, -1, -1}), in.U, in.initial})
      weights.push_back(at::randn(shape.sizes(), shape.options()));
    auto loss = [&](const at::Tensor& entering, const at::Tensor& delta, const at::Tensor& final_state) {
      auto total = at::zeros({}, entering.options());
      if (use[0]) total = total + (entering * weights[0]).sum();
      if (use[1]) total = total + (delta * weights[1]).sum();
      if (use[2]) total = total + (final_state * weights[2]).sum();
      return total;
    };
    std::vector<at::Tensor> leaves, reference_leaves;
    for (const auto& t : in.all()) {
      leaves.push_back(t.clone().requires_grad_(true));
      reference_leaves.push_back(t.clone().requires_grad_(true));
    }
    auto out = delta_rule_chunk_states(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4]);
    auto grads = torch::autograd::grad({loss(out.entering, out.delta, out.final_state)}, leaves);
    auto ref = chunk_state_scan_reference({.x0 = reference_leaves[4], .y_init = reference_leaves[0],
                                           .a = reference_leaves[1], .b = reference_leaves[2],
                                           .decay = reference_leaves[3], .y_sign = -1.0, .x_sign = 1.0});
    auto ref_grads = torch::autograd::grad({loss(ref.states, ref.y, ref.x_final)}, reference_leaves);
    for (size_t i = 0; i < grads.size(); ++i)
      EXPECT_TRUE(at::allclose(grads[i], ref_grads[i], 1e-10, 1e-10))
          << what << ", input " << i << ": " << (grads[i] - ref_grads[i]).abs().max();
  }
}

// Visiting the chunks from the last is visiting the chunk-reversed inputs from the first.
TEST(ChunkStateScan, ReverseScanIsTheScanOfTheReversedChunks) {
  auto in = random_states_inputs(4, 3, 4, 2, float64_options());
  auto x_add = at::randn({2, 3, 4, 4, 2}, float64_options());
  auto flip = [](const at::Tensor& t, int64_t dim) { return t.flip({dim}); };
  auto reverse = chunk_state_scan_reference({.x0 = in.initial, .y_init = in.U, .a = in.W, .b = in.k_to_end,
                                             .decay = in.chunk_decay, .x_add = x_add, .y_sign = 0.5, .x_sign = -2.0,
                                             .reverse = true});
  auto forward = chunk_state_scan_reference({.x0 = in.initial, .y_init = flip(in.U, 2), .a = flip(in.W, 2),
                                             .b = flip(in.k_to_end, 2), .decay = flip(in.chunk_decay, 2),
                                             .x_add = flip(x_add, 2), .y_sign = 0.5, .x_sign = -2.0});
  EXPECT_TRUE(at::allclose(reverse.states, flip(forward.states, 2), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(reverse.y, flip(forward.y, 2), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(reverse.x_final, forward.x_final, 1e-12, 1e-12));
}

// tf32_products changes only how the backward's two gradient products round: nothing off CUDA,
// TF32's 2^-11 steps on CUDA. Values and every gradient stay within that of the float32 path.
TEST(DeltaRuleChunkStates, Tf32ProductsChangeTheBackwardOnlyByTf32Rounding) {
  const double tolerance = strata::testing::test_device().is_cuda() ? 2e-3 : 1e-6;
  auto in = random_states_inputs(6, 16, 32, 24, float64_options().dtype(at::kFloat));
  auto run = [&](bool tf32) {
    std::vector<at::Tensor> leaves;
    for (const auto& t : in.all()) leaves.push_back(t.detach().clone().requires_grad_(true));
    auto out = delta_rule_chunk_states(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], tf32);
    auto loss = out.entering.sum() + (out.delta * out.delta).sum() + out.final_state.sum();
    auto grads = torch::autograd::grad({loss}, leaves);
    grads.push_back(out.delta);
    return grads;
  };
  const auto plain = run(false), tf32 = run(true);
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_LT(((tf32[i] - plain[i]).norm() / plain[i].norm()).item<double>(), tolerance) << "tensor " << i;
  EXPECT_NE(strata::testing::error_of([&] {
              auto wide = random_states_inputs(2, 4, 6, 3, float64_options());
              delta_rule_chunk_states(wide.U, wide.W, wide.k_to_end, wide.chunk_decay, wide.initial, true);
            }).find("tf32_products needs float32 inputs, got Double"),
            std::string::npos);
}

TEST(DeltaRuleChunkStates, RejectsInputsThatDoNotFitW) {
  auto in = random_states_inputs(2, 4, 6, 3, float64_options());
  auto expect_error = [&](const StatesInputs& bad, const std::string& expected) {
    try {
      delta_rule_chunk_states(bad.U, bad.W, bad.k_to_end, bad.chunk_decay, bad.initial);
      ADD_FAILURE() << "accepted inputs that should fail with: " << expected;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  auto bad = in;
  bad.U = in.U.narrow(3, 0, 3);
  expect_error(bad, "U must be [B, H, N, C, Dv] = [2, 3, 2, 4, 3], got shape [2, 3, 2, 3, 3]");
  bad = in;
  bad.chunk_decay = in.chunk_decay.unsqueeze(-1);
  expect_error(bad, "chunk_decay must be [B, H, N] = [2, 3, 2]");
  bad = in;
  bad.initial = in.initial.to(at::kFloat);
  expect_error(bad, "every input must have W's dtype Double, got Float");
}

}  // namespace
}  // namespace strata
