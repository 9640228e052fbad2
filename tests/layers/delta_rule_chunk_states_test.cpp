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

// Segments (packed documents) are independent scans: the twin over all chunks with offsets equals
// the scan of each segment's chunks alone from its own x0, in both directions; an empty segment
// hands its x0 straight to x_final.
TEST(ChunkStateScan, SegmentsAreIndependentScans) {
  auto in = random_states_inputs(7, 3, 4, 2, float64_options());
  const std::vector<int64_t> offsets{0, 2, 2, 3, 7};
  auto x0 = at::randn({4, 2, 3, 4, 2}, float64_options());
  auto x_add = at::randn({2, 3, 7, 4, 2}, float64_options());
  for (bool reverse : {false, true}) {
    kernels::ChunkScanInputs packed{.x0 = x0, .y_init = in.U, .a = in.W, .b = in.k_to_end, .decay = in.chunk_decay,
                                    .x_add = x_add, .y_sign = -1.0, .x_sign = 0.5, .reverse = reverse,
                                    .chunk_offsets = at::tensor(offsets, at::kLong)};
    auto whole = chunk_state_scan_reference(packed);
    ASSERT_EQ(whole.x_final.sizes(), x0.sizes());
    for (int64_t s = 0; s + 1 < static_cast<int64_t>(offsets.size()); ++s) {
      const auto first = offsets[s], count = offsets[s + 1] - offsets[s];
      const auto what = strata::cat(reverse ? "reverse" : "forward", ", segment ", s);
      if (count == 0) {
        EXPECT_TRUE(at::equal(whole.x_final[s], x0[s])) << what;
        continue;
      }
      auto part = [&](const at::Tensor& t, int64_t dim) { return t.narrow(dim, first, count); };
      auto alone = chunk_state_scan_reference({.x0 = x0[s], .y_init = part(in.U, 2), .a = part(in.W, 2),
                                               .b = part(in.k_to_end, 2), .decay = part(in.chunk_decay, 2),
                                               .x_add = part(x_add, 2), .y_sign = -1.0, .x_sign = 0.5,
                                               .reverse = reverse});
      EXPECT_TRUE(at::allclose(part(whole.states, 2), alone.states, 1e-12, 1e-12)) << what;
      EXPECT_TRUE(at::allclose(part(whole.y, 2), alone.y, 1e-12, 1e-12)) << what;
      EXPECT_TRUE(at::allclose(whole.x_final[s], alone.x_final, 1e-12, 1e-12)) << what;
    }
  }
}

// With segments the hand-written backward (a reverse scan over the same segments) still matches
// autograd through the forward twin, every input's gradient, each initial state's included.
TEST(DeltaRuleChunkStates, HandWrittenBackwardMatchesAutogradWithSegments) {
  auto in = random_states_inputs(6, 4, 5, 3, float64_options());
  in.U = in.U.narrow(0, 0, 1);
  in.W = in.W.narrow(0, 0, 1);
  in.k_to_end = in.k_to_end.narrow(0, 0, 1);
  in.chunk_decay = in.chunk_decay.narrow(0, 0, 1);
  const std::vector<int64_t> offsets{0, 1, 4, 6};
  in.initial = at::randn({3, 1, 3, 5, 3}, float64_options());
  std::vector<at::Tensor> leaves, reference_leaves;
  for (const auto& t : in.all()) {
    leaves.push_back(t.clone().requires_grad_(true));
    reference_leaves.push_back(t.clone().requires_grad_(true));
  }
  auto weight_entering = at::randn({1, 3, 6, 5, 3}, float64_options());
  auto weight_delta = at::randn_like(in.U), weight_final = at::randn_like(in.initial);
  auto loss = [&](const at::Tensor& entering, const at::Tensor& delta, const at::Tensor& final_state) {
    return (entering * weight_entering).sum() + (delta * weight_delta).sum() + (final_state * weight_final).sum();
  };
  auto out = delta_rule_chunk_states(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], false, offsets);
  ASSERT_EQ(out.final_state.sizes(), in.initial.sizes());
  auto grads = torch::autograd::grad({loss(out.entering, out.delta, out.final_state)}, leaves);
  auto ref = chunk_state_scan_reference({.x0 = reference_leaves[4], .y_init = reference_leaves[0],
                                         .a = reference_leaves[1], .b = reference_leaves[2],
                                         .decay = reference_leaves[3], .y_sign = -1.0, .x_sign = 1.0,
                                         .chunk_offsets = at::tensor(offsets, at::kLong)});
  auto ref_grads = torch::autograd::grad({loss(ref.states, ref.y, ref.x_final)}, reference_leaves);
  for (size_t i = 0; i < grads.size(); ++i)
    EXPECT_TRUE(at::allclose(grads[i], ref_grads[i], 1e-10, 1e-10))
        << "input " << i << ": " << (grads[i] - ref_grads[i]).abs().max();
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

  auto expect_segments_error = [&](const std::vector<int64_t>& offsets, const at::Tensor& initial,
                                   const std::string& expected) {
    EXPECT_NE(strata::testing::error_of([&] {
                delta_rule_chunk_states(in.U, in.W, in.k_to_end, in.chunk_decay, initial, false, offsets);
              }).find(expected),
              std::string::npos)
        << expected;
  };
  auto per_segment = in.initial.unsqueeze(0).expand({2, -1, -1, -1, -1});
  expect_segments_error({0, 1}, per_segment, "chunk_offsets must run from 0 to the chunk count 2, got [0, 1]");
  expect_segments_error({0, 2, 1, 2}, per_segment, "chunk_offsets must not decrease, got 2 then 1 at segment 1");
  expect_segments_error({0, 1, 2}, in.initial.unsqueeze(0).expand({3, -1, -1, -1, -1}),
                        "with 2 segments initial must be [2, ..., Dk, Dv], got shape [3, 2, 3, 6, 3]");
  expect_segments_error({0, 1, 2}, in.initial,
                        "with segments initial must be [S, B, H, Dk, Dv] with [B, H, Dk] = [2, 3, 6], got shape "
                        "[2, 3, 6, 3]");
}

}  // namespace
}  // namespace strata
