// Packed documents (cu_seqlens) through Gated DeltaNet: one row holding documents back to back
// equals the documents run one by one, for the delta rule (both forms) and for the whole mixer
// (projections, conv, rule, gated norm), values and every gradient; malformed offsets refused.
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gated_delta_net_fixture.h"
#include "strata/core/error.h"
#include "strata/layers/gated_delta_net.h"
#include "strata/layers/gated_delta_rule.h"
#include "strata/spec/inference_cache.h"

namespace strata {
namespace {

using testing::Gates;
using testing::qwen3_next_mixer;
using testing::random_rule_inputs;
using testing::relative_error;

std::vector<int64_t> offsets_of(const std::vector<int64_t>& lengths) {
  std::vector<int64_t> bounds{0};
  for (auto length : lengths) bounds.push_back(bounds.back() + length);
  return bounds;
}

// The rule over documents of these lengths, packed and one by one, in float64 (where rounding is
// negligible, so packing must change nothing but the order of sums): outputs, each document's
// final state and every input's gradient, the initial states' included.
void expect_packed_rule_equals_documents_alone(const std::vector<int64_t>& lengths, bool chunked, bool with_initial,
                                               Gates gates) {
  const int64_t chunk = 16;
  const auto bounds = offsets_of(lengths);
  const auto documents = static_cast<int64_t>(lengths.size());
  SCOPED_TRACE(cat("cu_seqlens=", at::IntArrayRef(bounds), chunked ? " chunked" : " recurrent",
                   " initial_state=", with_initial, ", ", testing::gates_name(gates)));
  const auto options = at::TensorOptions().device(testing::test_device()).dtype(at::kDouble);
  auto in = random_rule_inputs(bounds.back(), options, 1.0, gates);
  std::vector<at::Tensor> leaves{in.q, in.k, in.v, in.g, in.beta};
  for (auto& t : leaves) t = t.narrow(0, 0, 1).contiguous().requires_grad_(true);
  leaves.push_back(at::randn({documents, 3, 8, 6}, options).requires_grad_(true));
  auto rule = [&](const std::vector<at::Tensor>& x, const std::optional<at::Tensor>& state,
                  const std::optional<at::Tensor>& cu_seqlens) {
    return chunked ? gated_delta_rule_chunked(x[0], x[1], x[2], x[3], x[4], chunk, state, cu_seqlens)
                   : gated_delta_rule_recurrent(x[0], x[1], x[2], x[3], x[4], state, cu_seqlens);
  };
  auto initial = with_initial ? std::optional<at::Tensor>(leaves[5]) : std::nullopt;
  auto packed = rule(leaves, initial, at::tensor(bounds, at::kLong));

  std::vector<at::Tensor> outs, finals;
  for (int64_t doc = 0; doc < documents; ++doc) {
    std::vector<at::Tensor> part;
    for (int i = 0; i < 5; ++i) part.push_back(leaves[i].narrow(1, bounds[doc], lengths[doc]));
    auto state = with_initial ? std::optional<at::Tensor>(leaves[5].narrow(0, doc, 1)) : std::nullopt;
    auto alone = rule(part, state, std::nullopt);
    outs.push_back(alone.out);
    finals.push_back(alone.final_state);
  }
  const DeltaRuleOutput one_by_one{at::cat(outs, 1), at::cat(finals, 0)};
  ASSERT_EQ(packed.out.sizes(), one_by_one.out.sizes());
  ASSERT_EQ(packed.final_state.sizes(), (at::IntArrayRef{documents, 3, 8, 6}));
  EXPECT_LT(relative_error(packed.out, one_by_one.out), 1e-12);
  EXPECT_LT(relative_error(packed.final_state, one_by_one.final_state), 1e-12);
  // The comparison would see a state carried into the next document (unless the gates forget it).
  if (documents > 1 && gates != Gates::near_zero) {
    auto unpacked = rule(leaves, initial ? std::optional<at::Tensor>(leaves[5].narrow(0, 0, 1)) : std::nullopt,
                         std::nullopt);
    EXPECT_GT(relative_error(unpacked.out, one_by_one.out), 1e-3);
  }

  auto out_weight = at::randn_like(packed.out), state_weight = at::randn_like(packed.final_state);
  auto loss = [&](const DeltaRuleOutput& o) { return (o.out * out_weight).sum() + (o.final_state * state_weight).sum(); };
  auto used = leaves;
  if (!with_initial) used.pop_back();
  auto grads_packed = torch::autograd::grad({loss(packed)}, used, {}, /*retain_graph=*/true);
  auto grads_one_by_one = torch::autograd::grad({loss(one_by_one)}, used);
  const char* names[] = {"q", "k", "v", "g", "beta", "initial_state"};
  for (size_t i = 0; i < used.size(); ++i)
    EXPECT_LT(relative_error(grads_packed[i], grads_one_by_one[i]), 1e-11) << "d " << names[i];
}

// Lengths: a single document, length 1 at either end, lengths below, at and above the chunk (16)
// and not multiples of it, and random ones.
TEST(GatedDeltaRule, PackedDocumentsEqualTheDocumentsOneByOne) {
  at::manual_seed(6);
  std::vector<std::vector<int64_t>> document_lengths{{37}, {1, 16, 5, 33}, {20, 70, 1, 9, 1}, {32, 48}};
  auto random_lengths = at::randint(1, 50, {6}, at::kLong);
  document_lengths.emplace_back(random_lengths.data_ptr<int64_t>(), random_lengths.data_ptr<int64_t>() + 6);
  for (const auto& lengths : document_lengths)
    for (bool chunked : {true, false})
      for (bool with_initial : {false, true}) expect_packed_rule_equals_documents_alone(lengths, chunked, with_initial, Gates::mixed);
}

TEST(GatedDeltaRule, PackedDocumentsEqualTheDocumentsOneByOneWithGatesNearZeroAndOne) {
  at::manual_seed(7);
  for (auto gates : {Gates::near_one, Gates::near_zero})
    for (bool chunked : {true, false}) expect_packed_rule_equals_documents_alone({3, 40, 17, 1}, chunked, true, gates);
}

TEST(GatedDeltaRule, RejectsMalformedDocumentOffsets) {
  auto in = random_rule_inputs(10, at::TensorOptions());
  auto one_row = [](const at::Tensor& t) { return t.narrow(0, 0, 1); };
  auto chunked = [&](const at::Tensor& cu_seqlens, const std::optional<at::Tensor>& state = std::nullopt) {
    gated_delta_rule_chunked(one_row(in.q), one_row(in.k), one_row(in.v), one_row(in.g), one_row(in.beta), 4, state,
                             cu_seqlens);
  };
  auto expect_error = [](const std::function<void()>& action, const std::string& expected) {
    const auto message = testing::error_of(action);
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  expect_error([&] { chunked(at::tensor({0, 4, 9}, at::kLong)); },
               "gated_delta_rule_chunked: cu_seqlens must run from 0 to T = 10, got [0, 4, 9]");
  expect_error([&] { chunked(at::tensor({0, 4, 4, 10}, at::kLong)); },
               "document 1 is empty (cu_seqlens[1] = 4, cu_seqlens[2] = 4); expected strictly increasing offsets");
  expect_error([&] { chunked(at::tensor({0.0, 10.0})); }, "cu_seqlens must be int64 or int32 [N + 1]");
  expect_error([&] { chunked(at::tensor({0, 3, 10}, at::kInt), at::zeros({1, 3, 8, 6})); },
               "initial_state must be [N, H, Dk, Dv] = [2, 3, 8, 6], got shape [1, 3, 8, 6]");
  expect_error(
      [&] {
        gated_delta_rule_recurrent(in.q, in.k, in.v, in.g, in.beta, std::nullopt, at::tensor({0, 10}, at::kLong));
      },
      "packed documents (cu_seqlens) take a batch of one row, got B = 2");
}

struct MixerRun {
  at::Tensor output, grad_hidden;
  std::map<std::string, at::Tensor> grads;  // every parameter's
};

// The mixer on `hidden` ([1, T, 64]) with these packed documents, or on each document alone
// (outputs concatenated), backpropagating out_weight.
MixerRun run_mixer(const at::Tensor& hidden, const std::vector<int64_t>& bounds, bool packed, at::ScalarType dtype,
                   const at::Tensor& out_weight) {
  auto mixer = qwen3_next_mixer(hidden.device());
  mixer->to(dtype);
  auto leaf = hidden.to(dtype).requires_grad_(true);
  at::Tensor output;
  if (packed) {
    ForwardContext ctx;
    ctx.cu_seqlens = at::tensor(bounds, at::kLong);
    output = mixer->forward(leaf, ctx).output;
  } else {
    std::vector<at::Tensor> parts;
    for (size_t d = 0; d + 1 < bounds.size(); ++d) {
      ForwardContext ctx;
      parts.push_back(mixer->forward(leaf.narrow(1, bounds[d], bounds[d + 1] - bounds[d]), ctx).output);
    }
    output = at::cat(parts, 1);
  }
  (output * out_weight.to(dtype)).sum().backward();
  MixerRun run{output, leaf.grad(), {}};
  for (const auto& param : mixer->named_parameters()) run.grads[param.key()] = param.value().grad();
  return run;
}

// Lengths 1 and 3 (shorter than the conv), 70 (over a chunk of 64), 64, and a single document.
// float64 shows the algebra is the same (packing only reorders sums). float32 (the CUDA kernels on
// the GPU machine) must be as close to the float64 documents as float32 documents one by one are:
// some gradients (A_log's, dt_bias's: sums over every token of products of decays) lose ~1e-2
// in float32 either way.
TEST(GatedDeltaNet, PackedDocumentsEqualTheDocumentsOneByOne) {
  at::manual_seed(8);
  const auto device = testing::test_device();
  for (const auto& lengths : {std::vector<int64_t>{1, 3, 70, 64, 5}, std::vector<int64_t>{45}}) {
    const auto bounds = offsets_of(lengths);
    SCOPED_TRACE(cat("cu_seqlens=", at::IntArrayRef(bounds)));
    auto hidden = at::randn({1, bounds.back(), 64}, at::TensorOptions().device(device));
    auto out_weight = at::randn_like(hidden);
    const auto reference = run_mixer(hidden, bounds, false, at::kDouble, out_weight);
    const auto packed64 = run_mixer(hidden, bounds, true, at::kDouble, out_weight);
    EXPECT_LT(relative_error(packed64.output, reference.output), 1e-12);
    EXPECT_LT(relative_error(packed64.grad_hidden, reference.grad_hidden), 1e-12);
    for (const auto& [name, grad] : packed64.grads) EXPECT_LT(relative_error(grad, reference.grads.at(name)), 1e-12) << name;

    const auto packed32 = run_mixer(hidden, bounds, true, at::kFloat, out_weight);
    const auto alone32 = run_mixer(hidden, bounds, false, at::kFloat, out_weight);
    auto expect_as_accurate = [&](const at::Tensor& packed, const at::Tensor& alone, const at::Tensor& ref,
                                  const std::string& what) {
      EXPECT_LE(relative_error(packed, ref), std::max(2 * relative_error(alone, ref), 1e-5))
          << what << ": float32 documents one by one are off by " << relative_error(alone, ref);
    };
    expect_as_accurate(packed32.output, alone32.output, reference.output, "output");
    expect_as_accurate(packed32.grad_hidden, alone32.grad_hidden, reference.grad_hidden, "d hidden");
    for (const auto& [name, grad] : packed32.grads)
      expect_as_accurate(grad, alone32.grads.at(name), reference.grads.at(name), "d " + name);

    if (lengths.size() > 1) {  // the comparison sees documents mixing
      auto mixer = qwen3_next_mixer(device);
      ForwardContext plain;
      EXPECT_GT(relative_error(mixer->forward(hidden, plain).output, reference.output), 1e-3);
    }
  }
}

TEST(GatedDeltaNet, RefusesPackedDocumentsWithADecodingCache) {
  auto mixer = qwen3_next_mixer(at::kCPU);
  InferenceCache cache;
  ForwardContext ctx;
  ctx.cache = &cache;
  ctx.cu_seqlens = at::tensor({0, 2, 5}, at::kLong);
  EXPECT_NE(testing::error_of([&] { mixer->forward(at::randn({1, 5, 64}), ctx); })
                .find("GatedDeltaNet: packed documents (cu_seqlens) with a decoding cache"),
            std::string::npos);
}

}  // namespace
}  // namespace strata
