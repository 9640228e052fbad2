// Gated DeltaNet: the chunked delta rule against its recurrent definition (values, final states,
// gradients), the mixer against HF Qwen3-Next (tests/fixtures/hf/qwen3_next, layer 0), decoding
// against the whole sequence, and the HF <-> strata in_proj layout.
#include "strata/layers/gated_delta_net.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "strata/backends/local_backend.h"
#include "strata/core/error.h"
#include "strata/hf/gated_delta_net_layout.h"
#include "strata/io/safetensors.h"
#include "strata/layers/gated_delta_rule.h"
#include "test_util.h"

namespace strata {
namespace {

double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  return ((actual.to(at::kDouble) - expected.to(at::kDouble)).norm() / expected.to(at::kDouble).norm()).item<double>();
}

struct RuleInputs {
  at::Tensor q, k, v, g, beta, initial_state;
};

// Inputs as the mixer produces them: unit-norm q and k, q scaled by 1/sqrt(Dk), log decays of
// mixed magnitude (times decay_scale; some steps forget almost everything), beta in (0, 1).
RuleInputs random_rule_inputs(int64_t seq, at::TensorOptions options, double decay_scale = 1.0) {
  const int64_t batch = 2, heads = 3, key_dim = 8, value_dim = 6;
  auto unit = [&](int64_t dim) {
    auto x = at::randn({batch, seq, heads, dim}, options);
    return x / x.norm(2, -1, /*keepdim=*/true);
  };
  return {unit(key_dim) / std::sqrt(static_cast<double>(key_dim)), unit(key_dim),
          at::randn({batch, seq, heads, value_dim}, options),
          -decay_scale * at::exp(at::randn({batch, seq, heads}, options)) *
              at::softplus(at::randn({batch, seq, heads}, options)),
          at::sigmoid(at::randn({batch, seq, heads}, options)), at::randn({batch, heads, key_dim, value_dim}, options)};
}

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

// Packed documents: one row holding documents back to back with cu_seqlens equals running each
// document alone, in both forms: outputs, each document's final state and every input's gradient
// (the initial states' included). Lengths: a single document, length 1 at either end, lengths
// below, at and above the chunk (16) and not multiples of it, and random ones.
TEST(GatedDeltaRule, PackedDocumentsEqualTheDocumentsOneByOne) {
  at::manual_seed(6);
  const auto device = testing::test_device();
  const int64_t chunk = 16;
  std::vector<std::vector<int64_t>> document_lengths{{37}, {1, 16, 5, 33}, {20, 70, 1, 9, 1}, {32, 48}};
  auto random_lengths = at::randint(1, 50, {6}, at::kLong);
  document_lengths.emplace_back(random_lengths.data_ptr<int64_t>(), random_lengths.data_ptr<int64_t>() + 6);
  for (const auto& lengths : document_lengths)
    for (bool chunked : {true, false})
      for (bool with_initial : {false, true}) {
        std::vector<int64_t> bounds{0};
        for (auto length : lengths) bounds.push_back(bounds.back() + length);
        const auto documents = static_cast<int64_t>(lengths.size());
        SCOPED_TRACE(cat("cu_seqlens=", at::IntArrayRef(bounds), chunked ? " chunked" : " recurrent",
                         " initial_state=", with_initial));
        auto in = random_rule_inputs(bounds.back(), at::TensorOptions().device(device));
        std::vector<at::Tensor> leaves{in.q, in.k, in.v, in.g, in.beta,
                                       at::randn({documents, 3, 8, 6}, at::TensorOptions().device(device))};
        for (auto& t : leaves) t = t.narrow(0, 0, 1).contiguous().requires_grad_(true);
        leaves[5] = leaves[5].detach().expand({documents, -1, -1, -1}).contiguous().requires_grad_(true);
        auto initial = with_initial ? std::optional<at::Tensor>(leaves[5]) : std::nullopt;
        auto rule = [&](const std::vector<at::Tensor>& x, const std::optional<at::Tensor>& state,
                        const std::optional<at::Tensor>& cu_seqlens) {
          return chunked ? gated_delta_rule_chunked(x[0], x[1], x[2], x[3], x[4], chunk, state, cu_seqlens)
                         : gated_delta_rule_recurrent(x[0], x[1], x[2], x[3], x[4], state, cu_seqlens);
        };
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
        auto one_by_one = DeltaRuleOutput{at::cat(outs, 1), at::cat(finals, 0)};
        ASSERT_EQ(packed.out.sizes(), one_by_one.out.sizes());
        if (documents > 1 && !with_initial)  // the comparison sees a state carried across documents
          EXPECT_FALSE(at::allclose(rule(leaves, std::nullopt, std::nullopt).out, one_by_one.out, 1e-3, 1e-3));
        ASSERT_EQ(packed.final_state.sizes(), (at::IntArrayRef{documents, 3, 8, 6}));
        EXPECT_TRUE(at::allclose(packed.out, one_by_one.out, 1e-5, 1e-5)) << (packed.out - one_by_one.out).abs().max();
        EXPECT_TRUE(at::allclose(packed.final_state, one_by_one.final_state, 1e-5, 1e-5))
            << (packed.final_state - one_by_one.final_state).abs().max();

        auto out_weight = at::randn_like(packed.out), state_weight = at::randn_like(packed.final_state);
        auto loss = [&](const DeltaRuleOutput& o) {
          return (o.out * out_weight).sum() + (o.final_state * state_weight).sum();
        };
        auto used = leaves;
        if (!with_initial) used.pop_back();
        auto grads_packed = torch::autograd::grad({loss(packed)}, used, {}, /*retain_graph=*/true);
        auto grads_one_by_one = torch::autograd::grad({loss(one_by_one)}, used);
        for (size_t i = 0; i < used.size(); ++i)
          EXPECT_TRUE(at::allclose(grads_packed[i], grads_one_by_one[i], 1e-4, 1e-4))
              << "input " << i << ": " << (grads_packed[i] - grads_one_by_one[i]).abs().max();
      }
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
  expect_error([&] { chunked(at::tensor({0, 4, 9}, at::kLong)); }, "cu_seqlens must run from 0 to T = 10, got [0, 4, 9]");
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

// The Qwen3-Next fixture's linear-attention settings, read from its config.json.
std::shared_ptr<TransformerConfig> qwen3_next_config() {
  std::ifstream file(testing::fixture("qwen3_next") + "/model/config.json");
  auto json = nlohmann::json::parse(file);
  auto c = std::make_shared<TransformerConfig>();
  c->num_layers = json["num_hidden_layers"];
  c->hidden_size = json["hidden_size"];
  c->linear_conv_kernel_dim = json["linear_conv_kernel_dim"];
  c->linear_key_head_dim = json["linear_key_head_dim"];
  c->linear_value_head_dim = json["linear_value_head_dim"];
  c->linear_num_key_heads = json["linear_num_key_heads"];
  c->linear_num_value_heads = json["linear_num_value_heads"];
  c->layernorm_epsilon = json["rms_norm_eps"];
  return c;
}

const std::string kHfPrefix = "model.layers.0.linear_attn.";

// Layer 0's mixer with the fixture's weights, converted to strata's names and layout.
std::shared_ptr<GatedDeltaNet> qwen3_next_mixer(at::Device device) {
  auto config = qwen3_next_config();
  auto mixer = std::make_shared<GatedDeltaNet>(LayerArgs{.config = config}, gated_delta_net_submodules(LocalBackend{}));
  auto checkpoint = io::SafetensorsFile::open(testing::fixture("qwen3_next") + "/model/model.safetensors");
  auto load_hf = [&](const std::string& name) { return checkpoint.load(kHfPrefix + name); };
  const auto& c = *config;
  std::map<std::string, at::Tensor> weights{
      {"in_proj.weight", hf::gdn_in_proj_from_hf(load_hf("in_proj_qkvz.weight"), load_hf("in_proj_ba.weight"),
                                                 c.linear_num_key_heads, c.linear_num_value_heads,
                                                 c.linear_key_head_dim, c.linear_value_head_dim)},
      {"conv1d.weight", load_hf("conv1d.weight")},
      {"dt_bias", load_hf("dt_bias")},
      {"A_log", load_hf("A_log")},
      {"out_norm.weight", load_hf("norm.weight")},
      {"out_proj.weight", load_hf("out_proj.weight")}};
  at::NoGradGuard no_grad;
  for (auto& param : mixer->named_parameters()) param.value().copy_(weights.at(param.key()));
  mixer->to(device);
  return mixer;
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
  auto input = reference.load("capture." + kHfPrefix + "in_proj_qkvz.in0").to(device);
  auto expected = reference.load("capture." + kHfPrefix + "out0");
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
  auto qkvz = reference.load("capture." + kHfPrefix + "in_proj_qkvz.out0");  // [2, 100, 192]
  // Per key head [q, k, v, z]; z is the last nv/nk * dv of each group, value heads in order.
  auto z = qkvz.unflatten(-1, {nk, 2 * dk + 2 * (nv / nk) * dv}).narrow(-1, 2 * dk + (nv / nk) * dv, (nv / nk) * dv);
  auto gate = z.reshape({-1, dv});  // [800, 16], rows ordered (batch, token, value head) like the input

  GatedRmsNorm norm(dv, config->layernorm_epsilon);
  auto checkpoint = io::SafetensorsFile::open(testing::fixture("qwen3_next") + "/model/model.safetensors");
  {
    at::NoGradGuard no_grad;
    norm.named_parameters()["weight"].copy_(checkpoint.load(kHfPrefix + "norm.weight"));
  }
  auto out = norm.forward(reference.load("capture." + kHfPrefix + "norm.in0"), gate);
  EXPECT_LE(relative_error(out, reference.load("capture." + kHfPrefix + "norm.out0")), 1e-6);
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

// Packed documents through the whole mixer (projections, conv, rule, gated norm): one row with
// cu_seqlens equals each document alone, output, input gradient and every parameter's gradient.
// Lengths 1 and 3 (shorter than the conv), 70 (over a chunk of 64), 64, and a single document.
TEST(GatedDeltaNet, PackedDocumentsEqualTheDocumentsOneByOne) {
  const auto device = testing::test_device();
  for (const auto& lengths : {std::vector<int64_t>{1, 3, 70, 64, 5}, std::vector<int64_t>{45}}) {
    std::vector<int64_t> bounds{0};
    for (auto length : lengths) bounds.push_back(bounds.back() + length);
    SCOPED_TRACE(cat("cu_seqlens=", at::IntArrayRef(bounds)));
    auto packed_mixer = qwen3_next_mixer(device), alone_mixer = qwen3_next_mixer(device);
    auto hidden = at::randn({1, bounds.back(), 64}, at::TensorOptions().device(device));
    auto out_weight = at::randn_like(hidden);
    auto packed_hidden = hidden.clone().requires_grad_(true), alone_hidden = hidden.clone().requires_grad_(true);

    ForwardContext packed_ctx;
    packed_ctx.cu_seqlens = at::tensor(bounds, at::kLong);
    auto packed = packed_mixer->forward(packed_hidden, packed_ctx).output;
    std::vector<at::Tensor> parts;
    for (size_t d = 0; d < lengths.size(); ++d) {
      ForwardContext ctx;
      parts.push_back(alone_mixer->forward(alone_hidden.narrow(1, bounds[d], lengths[d]), ctx).output);
    }
    auto alone = at::cat(parts, 1);
    EXPECT_LE(relative_error(packed, alone), 1e-5);
    (packed * out_weight).sum().backward();
    (alone * out_weight).sum().backward();
    EXPECT_LE(relative_error(packed_hidden.grad(), alone_hidden.grad()), 1e-5);
    auto alone_params = alone_mixer->named_parameters();
    for (const auto& param : packed_mixer->named_parameters())
      EXPECT_LE(relative_error(param.value().grad(), alone_params[param.key()].grad()), 1e-5) << param.key();
    if (lengths.size() > 1) {  // the comparison sees documents mixing
      ForwardContext plain;
      EXPECT_GT(relative_error(packed_mixer->forward(hidden, plain).output, alone), 1e-3);
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
