// Gated DeltaNet: the chunked delta rule against its recurrent definition (values, final states,
// gradients), the mixer against HF Qwen3-Next (tests/fixtures/hf/qwen3_next, layer 0), decoding
// against the whole sequence, and the HF <-> strata in_proj layout.
#include "strata/layers/gated_delta_net.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "gated_delta_net_fixture.h"
#include "strata/core/error.h"
#include "strata/hf/gated_delta_net_layout.h"
#include "strata/io/safetensors.h"
#include "strata/layers/gated_delta_rule.h"

namespace strata {
namespace {

using testing::qwen3_next_config;
using testing::qwen3_next_mixer;
using testing::random_rule_inputs;
using testing::relative_error;

TEST(GatedDeltaRule, ChunkedMatchesRecurrentWithGradients) {
  const auto device = testing::test_device();
  for (int64_t seq : {1, 7, 64, 100, 130}) {
    for (int64_t chunk : {64, 16}) {
      for (bool with_initial : {false, true}) {
        SCOPED_TRACE(cat("T=", seq, " chunk=", chunk, " initial_state=", with_initial));
        auto in = random_rule_inputs(seq, at::TensorOptions().device(device));
        std::vector<at::Tensor> leaves{in.q, in.k, in.v, in.g, in.beta};
        if (with_initial) leaves.push_back(in.initial_state);
        for (auto& t : leaves) t.requires_grad_(true);
        auto initial = with_initial ? std::optional<at::Tensor>(in.initial_state) : std::nullopt;

        auto chunked = gated_delta_rule_chunked(in.q, in.k, in.v, in.g, in.beta, chunk, initial);
        auto recurrent = gated_delta_rule_recurrent(in.q, in.k, in.v, in.g, in.beta, initial);
        ASSERT_EQ(chunked.out.sizes(), in.v.sizes());
        ASSERT_EQ(chunked.final_state.scalar_type(), at::kFloat);
        EXPECT_TRUE(at::allclose(chunked.out, recurrent.out, 1e-5, 1e-5)) << (chunked.out - recurrent.out).abs().max();
        EXPECT_TRUE(at::allclose(chunked.final_state, recurrent.final_state, 1e-5, 1e-5))
            << (chunked.final_state - recurrent.final_state).abs().max();

        // A random linear functional of both outputs, so every gradient path is exercised.
        auto out_weight = at::randn_like(recurrent.out), state_weight = at::randn_like(recurrent.final_state);
        auto loss = [&](const DeltaRuleOutput& o) {
          return (o.out * out_weight).sum() + (o.final_state * state_weight).sum();
        };
        auto grads_chunked = torch::autograd::grad({loss(chunked)}, leaves);
        auto grads_recurrent = torch::autograd::grad({loss(recurrent)}, leaves);
        for (size_t i = 0; i < leaves.size(); ++i)
          EXPECT_TRUE(at::allclose(grads_chunked[i], grads_recurrent[i], 1e-4, 1e-4))
              << "input " << i << ": " << (grads_chunked[i] - grads_recurrent[i]).abs().max();
      }
    }
  }
}

// In float64 rounding is negligible, so the two forms agree to the last digits: the chunked
// algebra (UT transform, state hand-off, padding) is exact, not merely close.
TEST(GatedDeltaRule, ChunkedEqualsRecurrentInFloat64) {
  auto in = random_rule_inputs(75, at::TensorOptions().dtype(at::kDouble));
  auto chunked = gated_delta_rule_chunked(in.q, in.k, in.v, in.g, in.beta, 16, in.initial_state);
  auto recurrent = gated_delta_rule_recurrent(in.q, in.k, in.v, in.g, in.beta, in.initial_state);
  EXPECT_TRUE(at::allclose(chunked.out, recurrent.out, 1e-12, 1e-12)) << (chunked.out - recurrent.out).abs().max();
  EXPECT_TRUE(at::allclose(chunked.final_state, recurrent.final_state, 1e-12, 1e-12));
}

// Decays large enough that cumulative log decays reach the thousands within a chunk. The decay
// between two steps is a difference of two such sums (HF's and fla's formulation, which strata
// follows to match their gradients), so float32 loses ~1e3 * 6e-8 in the exponent: the forms
// agree to 1e-4 here rather than the 1e-5 of ordinary decays.
TEST(GatedDeltaRule, ChunkedStaysAccurateUnderStrongDecay) {
  at::manual_seed(4);
  for (int repeat = 0; repeat < 5; ++repeat) {
    auto in = random_rule_inputs(130, at::TensorOptions().device(testing::test_device()), /*decay_scale=*/30.0);
    auto chunked = gated_delta_rule_chunked(in.q, in.k, in.v, in.g, in.beta, 64, in.initial_state);
    auto recurrent = gated_delta_rule_recurrent(in.q, in.k, in.v, in.g, in.beta, in.initial_state);
    EXPECT_TRUE(at::allclose(chunked.out, recurrent.out, 1e-4, 1e-4)) << (chunked.out - recurrent.out).abs().max();
    EXPECT_TRUE(at::allclose(chunked.final_state, recurrent.final_state, 1e-4, 1e-4));
  }
}

TEST(GatedDeltaRule, ReturnsOutputInTheValueDtype) {
  auto in = random_rule_inputs(9, at::TensorOptions());
  auto out = gated_delta_rule_chunked(in.q, in.k, in.v.to(at::kBFloat16), in.g, in.beta, 4, std::nullopt);
  EXPECT_EQ(out.out.scalar_type(), at::kBFloat16);
  EXPECT_EQ(out.final_state.scalar_type(), at::kFloat);
}

// With bf16 values the output is bf16, and on CUDA the rule's products run in TF32: values,
// final state and every gradient must still agree with the float64 recurrence as closely as
// bf16 allows (its rounding step is 2^-8 = 3.9e-3), and the process's TF32 switch is left as it was.
TEST(GatedDeltaRule, ChunkedWithBf16ValuesIsAsAccurateAsBf16Allows) {
  at::manual_seed(5);
  const bool tf32_before = at::globalContext().allowTF32CuBLAS();
  auto in = random_rule_inputs(130, at::TensorOptions().device(testing::test_device()));
  std::vector<at::Tensor> leaves{in.q, in.k, in.v.to(at::kBFloat16), in.g, in.beta, in.initial_state};
  std::vector<at::Tensor> wide;
  for (auto& t : leaves) {
    t.requires_grad_(true);
    wide.push_back(t.detach().to(at::kDouble).requires_grad_(true));
  }
  auto chunked = gated_delta_rule_chunked(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], 64, leaves[5]);
  auto reference = gated_delta_rule_recurrent(wide[0], wide[1], wide[2], wide[3], wide[4], wide[5]);
  EXPECT_EQ(chunked.out.scalar_type(), at::kBFloat16);
  EXPECT_LT(relative_error(chunked.out, reference.out), 1e-2);
  EXPECT_LT(relative_error(chunked.final_state, reference.final_state), 2e-3);

  auto out_weight = at::randn(reference.out.sizes(), reference.out.options());
  auto state_weight = at::randn(reference.final_state.sizes(), reference.final_state.options());
  auto loss = [&](const DeltaRuleOutput& o) {
    return (o.out.to(at::kDouble) * out_weight).sum() + (o.final_state.to(at::kDouble) * state_weight).sum();
  };
  auto grads = torch::autograd::grad({loss(chunked)}, leaves);
  auto expected = torch::autograd::grad({loss(reference)}, wide);
  for (size_t i = 0; i < leaves.size(); ++i) EXPECT_LT(relative_error(grads[i], expected[i]), 1e-2) << "input " << i;
  EXPECT_EQ(at::globalContext().allowTF32CuBLAS(), tf32_before);
}

// Grouped value heads (Qwen3-Next's 16 key heads for 32 value heads): q and k with one head per
// group give what their copies repeated to every value head give, in both forms, packed or not,
// and their gradients are the sums over the value heads that read each key head.
TEST(GatedDeltaRule, KeyHeadsSharedByValueHeadsEqualTheirRepeatedCopies) {
  at::manual_seed(6);
  const int64_t batch = 1, seq = 70, key_heads = 2, heads = 6, key_dim = 8, value_dim = 5;
  const auto options = at::TensorOptions().dtype(at::kDouble);
  auto unit = [&](int64_t h) {
    auto x = at::randn({batch, seq, h, key_dim}, options);
    return x / x.norm(2, -1, true);
  };
  std::vector<at::Tensor> leaves{unit(key_heads) / std::sqrt(8.0), unit(key_heads),
                                 at::randn({batch, seq, heads, value_dim}, options),
                                 -at::exp(at::randn({batch, seq, heads}, options)),
                                 at::sigmoid(at::randn({batch, seq, heads}, options)),
                                 at::randn({2, heads, key_dim, value_dim}, options)};
  for (auto& t : leaves) t.requires_grad_(true);
  // Value head h reads key head h / 3, spelled out as an index rather than repeat_interleave.
  const auto key_head_of = at::tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 1}, at::kLong);
  const auto cu_seqlens = at::tensor(std::vector<int64_t>{0, 30, 70}, at::kLong);
  auto loss_weight = at::randn({batch, seq, heads, value_dim}, options);
  auto state_weight = at::randn({2, heads, key_dim, value_dim}, options);
  auto loss = [&](const DeltaRuleOutput& o) { return (o.out * loss_weight).sum() + (o.final_state * state_weight).sum(); };
  const auto& [q, k, v, g, beta, initial] = std::tie(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5]);
  auto repeated = gated_delta_rule_recurrent(q.index_select(2, key_head_of), k.index_select(2, key_head_of), v, g, beta,
                                             initial, cu_seqlens);
  const auto want = torch::autograd::grad({loss(repeated)}, leaves);
  for (bool chunked : {true, false}) {
    SCOPED_TRACE(chunked ? "chunked" : "recurrent");
    auto grouped = chunked ? gated_delta_rule_chunked(q, k, v, g, beta, 16, initial, cu_seqlens)
                           : gated_delta_rule_recurrent(q, k, v, g, beta, initial, cu_seqlens);
    ASSERT_EQ(grouped.out.sizes(), v.sizes());
    EXPECT_LT(relative_error(grouped.out, repeated.out), 1e-12);
    EXPECT_LT(relative_error(grouped.final_state, repeated.final_state), 1e-12);
    const auto got = torch::autograd::grad({loss(grouped)}, leaves);
    for (size_t i = 0; i < leaves.size(); ++i) {
      ASSERT_EQ(got[i].sizes(), leaves[i].sizes()) << "input " << i;
      EXPECT_LT(relative_error(got[i], want[i]), 1e-12) << "input " << i;
    }
  }
}

TEST(GatedDeltaRule, RejectsValueHeadsThatDoNotShareTheKeyHeadsEvenly) {
  auto in = random_rule_inputs(4, at::TensorOptions());  // 3 value heads
  const auto two_heads = [](const at::Tensor& t) { return t.narrow(2, 0, 2); };
  const auto message = testing::error_of(
      [&] { gated_delta_rule_chunked(two_heads(in.q), two_heads(in.k), in.v, in.g, in.beta, 4, std::nullopt); });
  EXPECT_NE(message.find("gated_delta_rule_chunked: v must be [B, T, H, Dv] with k's [B, T] = [2, 4] and H a multiple "
                         "of k's 2 heads, got shape [2, 4, 3, 6]"),
            std::string::npos)
      << message;
}

TEST(GatedDeltaRule, RejectsAMisshapedInitialState) {
  auto in = random_rule_inputs(4, at::TensorOptions());
  try {
    gated_delta_rule_recurrent(in.q, in.k, in.v, in.g, in.beta, in.initial_state.transpose(2, 3));
    ADD_FAILURE() << "a transposed initial state was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("initial_state must be [B, H, Dk, Dv] = [2, 3, 8, 6], got shape [2, 3, 6, 8]"),
              std::string::npos)
        << e.what();
  }
}

TEST(GatedDeltaNet, HasTheCanonicalParameters) {
  auto mixer = qwen3_next_mixer(at::kCPU);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& param : mixer->named_parameters()) shapes[param.key()] = param.value().sizes().vec();
  // nk dk = 32, nv dv = 64: in_proj = 2*32 + 2*64 + 2*4 = 200 rows; conv channels = 2*32 + 64 = 128.
  std::map<std::string, std::vector<int64_t>> expected{
      {"in_proj.weight", {200, 64}}, {"conv1d.weight", {128, 1, 4}}, {"dt_bias", {4}},
      {"A_log", {4}},                {"out_norm.weight", {16}},      {"out_proj.weight", {64, 64}}};
  EXPECT_EQ(shapes, expected);
}

TEST(GatedDeltaNet, BuildsThroughItsSpec) {
  auto config = testing::small_config();
  config->linear_num_key_heads = 2;
  config->linear_num_value_heads = 2;
  config->linear_key_head_dim = 8;
  config->linear_value_head_dim = 12;
  config->linear_chunk_size = 8;
  auto mixer = GatedDeltaNet::builder(gated_delta_net_submodules(LocalBackend{}))(LayerArgs{.config = config});
  ForwardContext ctx;
  auto out = mixer->forward(at::randn({2, 11, config->hidden_size}), ctx);
  EXPECT_EQ(out.output.sizes(), (std::vector<int64_t>{2, 11, config->hidden_size}));
  EXPECT_FALSE(out.bias.has_value());
}

TEST(GatedDeltaNet, RejectsValueHeadsThatDoNotShareKeyHeadsEvenly) {
  auto config = qwen3_next_config();
  config->linear_num_value_heads = 5;
  try {
    GatedDeltaNet(LayerArgs{.config = config}, gated_delta_net_submodules(LocalBackend{}));
    ADD_FAILURE() << "5 value heads over 2 key heads were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear_num_value_heads (5) must be a multiple of linear_num_key_heads (2)"),
              std::string::npos)
        << e.what();
  }
}

TEST(GatedDeltaNet, MatchesHfQwen3Next) {
  const auto device = testing::test_device();
  auto mixer = qwen3_next_mixer(device);
  auto reference = io::SafetensorsFile::open(testing::fixture("qwen3_next") + "/reference.safetensors");
  // [2, 100, 64]: T = 100 is not a multiple of the chunk size 64.
  auto input = reference.load("capture." + testing::kQwen3NextLayerPrefix + "in_proj_qkvz.in0").to(device);
  auto expected = reference.load("capture." + testing::kQwen3NextLayerPrefix + "out0");
  ForwardContext ctx;
  auto out = mixer->forward(input, ctx).output.cpu();
  EXPECT_LE(relative_error(out, expected), 1e-5);
}

// HF captured the norm's input (the delta rule's output, one row per token and value head) but
// not its gate; the gate is z, which the captured in_proj_qkvz output holds in HF's grouped layout.
TEST(GatedRmsNorm, MatchesHfQwen3NextRMSNormGated) {
  auto config = qwen3_next_config();
  const auto nk = config->linear_num_key_heads, nv = config->linear_num_value_heads;
  const auto dk = config->linear_key_head_dim, dv = config->linear_value_head_dim;
  auto reference = io::SafetensorsFile::open(testing::fixture("qwen3_next") + "/reference.safetensors");
  auto qkvz = reference.load("capture." + testing::kQwen3NextLayerPrefix + "in_proj_qkvz.out0");  // [2, 100, 192]
  // Per key head [q, k, v, z]; z is the last nv/nk * dv of each group, value heads in order.
  auto z = qkvz.unflatten(-1, {nk, 2 * dk + 2 * (nv / nk) * dv}).narrow(-1, 2 * dk + (nv / nk) * dv, (nv / nk) * dv);
  auto gate = z.reshape({-1, dv});  // [800, 16], rows ordered (batch, token, value head) like the input

  GatedRmsNorm norm(dv, config->layernorm_epsilon);
  auto checkpoint = io::SafetensorsFile::open(testing::fixture("qwen3_next") + "/model/model.safetensors");
  {
    at::NoGradGuard no_grad;
    norm.named_parameters()["weight"].copy_(checkpoint.load(testing::kQwen3NextLayerPrefix + "norm.weight"));
  }
  auto out = norm.forward(reference.load("capture." + testing::kQwen3NextLayerPrefix + "norm.in0"), gate);
  EXPECT_LE(relative_error(out, reference.load("capture." + testing::kQwen3NextLayerPrefix + "norm.out0")), 1e-6);
}

TEST(GatedDeltaNet, DecodingTokenByTokenMatchesTheSequence) {
  const auto device = testing::test_device();
  auto mixer = qwen3_next_mixer(device);
  auto hidden = at::randn({2, 45, 64}, at::TensorOptions().device(device));
  ForwardContext ctx;
  auto full = mixer->forward(hidden, ctx).output;
  auto state = mixer->initial_state(hidden.size(0), device);
  std::vector<at::Tensor> steps;
  for (int64_t t = 0; t < hidden.size(1); ++t)
    steps.push_back(mixer->forward_recurrent(hidden.narrow(1, t, 1), state).output);
  EXPECT_LE(relative_error(at::cat(steps, 1), full), 1e-5);
}

// Through the inference cache: a prompt prefilled in chunks (from an empty cached state), then
// one-token steps continuing it, as generation runs the model.
TEST(GatedDeltaNet, PrefillThenDecodeThroughTheCacheMatchesTheSequence) {
  const auto device = testing::test_device();
  auto mixer = qwen3_next_mixer(device);
  auto hidden = at::randn({2, 80, 64}, at::TensorOptions().device(device));
  ForwardContext plain;
  auto full = mixer->forward(hidden, plain).output;

  InferenceCache cache;
  ForwardContext ctx;
  ctx.cache = &cache;
  std::vector<at::Tensor> parts{mixer->forward(hidden.narrow(1, 0, 70), ctx).output};
  for (int64_t t = 70; t < hidden.size(1); ++t) parts.push_back(mixer->forward(hidden.narrow(1, t, 1), ctx).output);
  EXPECT_LE(relative_error(at::cat(parts, 1), full), 1e-5);
}

TEST(GdnInProjLayout, RoundTripIsExact) {
  const int64_t nk = 2, nv = 6, dk = 3, dv = 5, in = 7;
  auto qkvz = at::randn({2 * nk * dk + 2 * nv * dv, in});
  auto ba = at::randn({2 * nv, in});
  auto flat = hf::gdn_in_proj_from_hf(qkvz, ba, nk, nv, dk, dv);
  ASSERT_EQ(flat.sizes(), (std::vector<int64_t>{2 * nk * dk + 2 * nv * dv + 2 * nv, in}));
  auto [qkvz_back, ba_back] = hf::gdn_in_proj_to_hf(flat, nk, nv, dk, dv);
  EXPECT_TRUE(at::equal(qkvz_back, qkvz));
  EXPECT_TRUE(at::equal(ba_back, ba));
  // And the other way round, on a bias-shaped (1-D) tensor.
  auto flat_bias = at::randn({flat.size(0)});
  auto [qkvz_bias, ba_bias] = hf::gdn_in_proj_to_hf(flat_bias, nk, nv, dk, dv);
  EXPECT_TRUE(at::equal(hf::gdn_in_proj_from_hf(qkvz_bias, ba_bias, nk, nv, dk, dv), flat_bias));
}

// Row labels make the permutation visible: strata's rows are HF's, regrouped by kind.
TEST(GdnInProjLayout, GroupsRowsPerKeyHeadLikeHf) {
  const int64_t nk = 2, nv = 4, dk = 1, dv = 1;  // r = 2 value heads per key head
  // HF qkvz per key head: [q, k, v v, z z]; ba per key head: [b b, a a]. Label = row index.
  auto qkvz = at::arange(12, at::kFloat);
  auto ba = at::arange(100, 108, at::kFloat);
  auto flat = hf::gdn_in_proj_from_hf(qkvz, ba, nk, nv, dk, dv);
  auto expected = at::tensor(std::vector<float>{0, 6,  1, 7,  2, 3, 8, 9,  4, 5, 10, 11,  // q | k | v | z
                                                100, 101, 104, 105,  102, 103, 106, 107});  // b | a
  EXPECT_TRUE(at::equal(flat, expected)) << flat;
}

TEST(GdnInProjLayout, RejectsRowsThatDoNotFitTheHeads) {
  try {
    hf::gdn_in_proj_from_hf(at::zeros({191, 64}), at::zeros({8, 64}), 2, 4, 16, 16);
    ADD_FAILURE() << "191 rows were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("in_proj_qkvz must have 192 rows for nk = 2, nv = 4, dk = 16, dv = 16, got "
                                         "shape [191, 64]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace strata
