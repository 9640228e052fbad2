// Gated DeltaNet-2: the chunked rule against its recurrent definition in float64 (values, final
// states, every gradient), two tokens of the recurrence by hand (which pins the orientation of
// the erase and write terms), packed documents, and the mixer: parameters, initialisation, shapes,
// and decoding against the whole sequence. The rule's tests and token-by-token decoding run on the GPU
// with STRATA_TEST_DEVICE=cuda.
#include "strata/layers/gated_delta_net2.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>

#include "strata/backends/local_backend.h"
#include "strata/core/error.h"
#include "strata/layers/gated_delta_rule2.h"
#include "test_util.h"

namespace strata {
namespace {

using testing::error_of;

enum class Gates { mixed, near_one, near_zero };

const char* gates_name(Gates gates) {
  return gates == Gates::near_one ? "gates near 1" : gates == Gates::near_zero ? "gates near 0" : "mixed gates";
}

// The rule's inputs before the key-side ones are repeated to the value heads: q, k, g, b have
// key_heads heads, v, w and the state key_heads * group heads.
struct Rule2Leaves {
  at::Tensor q, k, v, g, b, w, initial_state;
};

// Inputs as the mixer makes them: unit-norm q (scaled by 1/sqrt(Dk)) and k, per-channel log
// decays, erase and write gates in (0, 1). near_one: decay, erase and write all near 1 (the state
// is kept and each write replaces what its key held); near_zero: all near 0 (strong forgetting,
// cumulative log decays of hundreds within a chunk). B = 2, Dk = 5, Dv = 4.
Rule2Leaves random_leaves(int64_t seq, int64_t key_heads, int64_t group, Gates gates) {
  const int64_t batch = 2, key_dim = 5, value_dim = 4, value_heads = key_heads * group;
  const auto options = at::TensorOptions().dtype(at::kDouble).device(testing::test_device());
  auto unit = [&](int64_t dim) {
    auto x = at::randn({batch, seq, key_heads, dim}, options);
    return x / x.norm(2, -1, /*keepdim=*/true);
  };
  const double decay_scale = gates == Gates::near_one ? 1e-4 : gates == Gates::near_zero ? 30.0 : 1.0;
  const double gate_shift = gates == Gates::near_one ? 8.0 : gates == Gates::near_zero ? -8.0 : 0.0;
  auto key_shape = std::vector<int64_t>{batch, seq, key_heads, key_dim};
  auto value_shape = std::vector<int64_t>{batch, seq, value_heads, value_dim};
  return {unit(key_dim) / std::sqrt(static_cast<double>(key_dim)),
          unit(key_dim),
          at::randn(value_shape, options),
          -decay_scale * at::exp(at::randn(key_shape, options)) * at::softplus(at::randn(key_shape, options)),
          at::sigmoid(at::randn(key_shape, options) + gate_shift),
          at::sigmoid(at::randn(value_shape, options) + gate_shift),
          at::randn({batch, value_heads, key_dim, value_dim}, options)};
}

at::Tensor to_value_heads(const at::Tensor& t, int64_t group) { return group == 1 ? t : t.repeat_interleave(group, 2); }

double max_difference(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(GatedDeltaRule2, ChunkedEqualsRecurrentInFloat64WithGradients) {
  at::manual_seed(0);
  struct Heads {
    int64_t key_heads, group;
  };
  for (int64_t seq : {1, 7, 37, 100}) {
    for (auto heads : {Heads{1, 1}, Heads{3, 1}, Heads{2, 2}}) {
      for (auto gates : {Gates::mixed, Gates::near_one, Gates::near_zero}) {
        for (bool with_initial : {false, true}) {
          // 12: chunks whose last block of pairs is short (the pairs go in blocks of 8 rows).
          const int64_t chunk = seq == 100 ? 64 : seq == 37 ? 12 : 16;
          SCOPED_TRACE(cat("T=", seq, " chunk=", chunk, " key heads=", heads.key_heads, " value heads per key head=",
                           heads.group, " ", gates_name(gates), " initial_state=", with_initial));
          auto in = random_leaves(seq, heads.key_heads, heads.group, gates);
          std::vector<at::Tensor> leaves{in.q, in.k, in.v, in.g, in.b, in.w};
          if (with_initial) leaves.push_back(in.initial_state);
          for (auto& t : leaves) t.requires_grad_(true);
          auto initial = with_initial ? std::optional<at::Tensor>(in.initial_state) : std::nullopt;
          auto expand = [&](const at::Tensor& t) { return to_value_heads(t, heads.group); };
          auto q = expand(in.q), k = expand(in.k), g = expand(in.g), b = expand(in.b);

          auto chunked = gated_delta_rule2_chunked(q, k, in.v, g, b, in.w, chunk, initial);
          auto recurrent = gated_delta_rule2_recurrent(q, k, in.v, g, b, in.w, initial);
          ASSERT_EQ(chunked.out.sizes(), in.v.sizes());
          ASSERT_EQ(chunked.final_state.sizes(), in.initial_state.sizes());
          ASSERT_EQ(chunked.final_state.scalar_type(), at::kDouble);
          EXPECT_TRUE(at::allclose(chunked.out, recurrent.out, 1e-10, 1e-10)) << max_difference(chunked.out, recurrent.out);
          EXPECT_TRUE(at::allclose(chunked.final_state, recurrent.final_state, 1e-10, 1e-10))
              << max_difference(chunked.final_state, recurrent.final_state);

          // A random linear functional of both outputs, so every gradient path is exercised.
          auto out_weight = at::randn_like(recurrent.out), state_weight = at::randn_like(recurrent.final_state);
          auto loss = [&](const DeltaRuleOutput& o) {
            return (o.out * out_weight).sum() + (o.final_state * state_weight).sum();
          };
          // The repeats to the value heads are shared by both graphs: keep them for the second.
          auto grads_chunked = torch::autograd::grad({loss(chunked)}, leaves, {}, /*retain_graph=*/true);
          auto grads_recurrent = torch::autograd::grad({loss(recurrent)}, leaves);
          const char* names[] = {"q", "k", "v", "g", "b", "w", "initial_state"};
          for (size_t i = 0; i < leaves.size(); ++i)
            EXPECT_TRUE(at::allclose(grads_chunked[i], grads_recurrent[i], 1e-8, 1e-8))
                << "d/d" << names[i] << ": " << max_difference(grads_chunked[i], grads_recurrent[i]);
        }
      }
    }
  }
}

// Decays of hundreds per chunk on a channel (gates near 0) overflow exp() in float32 when the
// pairwise decay is split around one centre per chunk; the chunked form splits it at blocks of rows
// instead, so every factor is at most 1 and it stays finite and close to the recurrence.
TEST(GatedDeltaRule2, ChunkedStaysAccurateUnderStrongDecayInFloat32) {
  at::manual_seed(5);
  auto in = random_leaves(130, 2, 2, Gates::near_zero);
  auto f32 = [](const at::Tensor& t) { return t.to(at::kFloat); };
  auto expand = [&](const at::Tensor& t) { return to_value_heads(f32(t), 2); };
  auto q = expand(in.q), k = expand(in.k), g = expand(in.g), b = expand(in.b);
  ASSERT_GT(-g.sum(1).max().item<double>(), 1000.0);  // the decay this test is about
  auto chunked = gated_delta_rule2_chunked(q, k, f32(in.v), g, b, f32(in.w), 64, f32(in.initial_state));
  auto recurrent = gated_delta_rule2_recurrent(q, k, f32(in.v), g, b, f32(in.w), f32(in.initial_state));
  EXPECT_TRUE(at::allclose(chunked.out, recurrent.out, 1e-5, 1e-5)) << max_difference(chunked.out, recurrent.out);
  EXPECT_TRUE(at::allclose(chunked.final_state, recurrent.final_state, 1e-5, 1e-5));
}

// One head, Dk = Dv = 2, from a zero state, worked by hand (key channels are the state's rows):
// token 1: k = (1, 0), v = (1, 2), no decay, b = (.5, .5), w = (1, .5): nothing to erase, so
//   S1 = k (w * v)^T = [[1, 1], [0, 0]] and o1 = S1^T q1 = (1, 1) for q1 = (1, 0).
// token 2: k = (.6, .8), v = (2, 0), decay (.5, 1), b = (1, .5), w = (.5, 1):
//   D S1 = [[.5, .5], [0, 0]]; the erase reads (b * k)^T D S1 = (.6, .4) . rows = (.3, .3);
//   the write row w * v = (1, 0); so u = (.7, -.3) and S2 = D S1 + k u^T = [[.92, .32], [.56, -.24]];
//   o2 = S2^T q2 = (.56, -.24) for q2 = (0, 1).
// Erasing along k and reading with b * k (not the reverse), and decaying rows (key channels), give
// these numbers; each swapped orientation gives others.
TEST(GatedDeltaRule2, TwoTokensComputedByHand) {
  const auto options = at::TensorOptions().dtype(at::kDouble).device(testing::test_device());
  auto tokens = [&](std::vector<double> values) { return at::tensor(values, options).reshape({1, 2, 1, 2}); };
  auto q = tokens({1, 0, 0, 1});
  auto k = tokens({1, 0, 0.6, 0.8});
  auto v = tokens({1, 2, 2, 0});
  auto g = at::log(tokens({1, 1, 0.5, 1}));
  auto b = tokens({0.5, 0.5, 1, 0.5});
  auto w = tokens({1, 0.5, 0.5, 1});
  auto expected_out = tokens({1, 1, 0.56, -0.24});
  auto expected_state = at::tensor({0.92, 0.32, 0.56, -0.24}, options).reshape({1, 1, 2, 2});
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "recurrent");
    auto rule = chunked ? gated_delta_rule2_chunked(q, k, v, g, b, w, 64, std::nullopt)
                        : gated_delta_rule2_recurrent(q, k, v, g, b, w, std::nullopt);
    EXPECT_TRUE(at::allclose(rule.out, expected_out, 1e-12, 1e-12)) << rule.out;
    EXPECT_TRUE(at::allclose(rule.final_state, expected_state, 1e-12, 1e-12)) << rule.final_state;
  }
}

// Packed documents: the state restarts at each document, as if each ran alone.
TEST(GatedDeltaRule2, PackedDocumentsRunAsSeparateSequences) {
  at::manual_seed(1);
  auto in = random_leaves(40, 2, 1, Gates::mixed);
  auto row = [](const at::Tensor& t) { return t.narrow(0, 0, 1); };
  auto cu_seqlens = at::tensor(std::vector<int64_t>{0, 5, 23, 40});
  auto starts = in.initial_state.narrow(0, 0, 1).repeat({3, 1, 1, 1}) * at::arange(1, 4, in.q.options()).view({3, 1, 1, 1});
  auto packed = gated_delta_rule2_chunked(row(in.q), row(in.k), row(in.v), row(in.g), row(in.b), row(in.w), 8, starts,
                                          cu_seqlens);
  auto recurrent = gated_delta_rule2_recurrent(row(in.q), row(in.k), row(in.v), row(in.g), row(in.b), row(in.w), starts,
                                               cu_seqlens);
  EXPECT_TRUE(at::allclose(packed.out, recurrent.out, 1e-10, 1e-10));
  EXPECT_TRUE(at::allclose(packed.final_state, recurrent.final_state, 1e-10, 1e-10));
  const int64_t bounds[] = {0, 5, 23, 40};
  for (int64_t doc = 0; doc < 3; ++doc) {
    auto part = [&](const at::Tensor& t) { return row(t).narrow(1, bounds[doc], bounds[doc + 1] - bounds[doc]); };
    auto alone = gated_delta_rule2_chunked(part(in.q), part(in.k), part(in.v), part(in.g), part(in.b), part(in.w), 8,
                                           starts.narrow(0, doc, 1));
    EXPECT_TRUE(at::allclose(part(packed.out), alone.out, 1e-12, 1e-12)) << "document " << doc;
    EXPECT_TRUE(at::allclose(packed.final_state.narrow(0, doc, 1), alone.final_state, 1e-12, 1e-12)) << "document " << doc;
  }
}

TEST(GatedDeltaRule2, RejectsPerHeadGatesAMisshapedStateAndSharedKeyHeads) {
  auto in = random_leaves(4, 1, 1, Gates::mixed);
  EXPECT_NE(error_of([&] {
              gated_delta_rule2_recurrent(in.q, in.k, in.v, in.g.select(-1, 0), in.b, in.w, std::nullopt);
            }).find("gated_delta_rule2_recurrent: g must have k's shape [2, 4, 1, 5], got shape [2, 4, 1]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              gated_delta_rule2_chunked(in.q, in.k, in.v, in.g, in.b, in.w, 4, in.initial_state.transpose(2, 3));
            }).find("initial_state must be [B, H, Dk, Dv] = [2, 1, 5, 4], got shape [2, 1, 4, 5]"),
            std::string::npos);
  // Its gates live on the key channels, so value heads do not share key heads in the rule (the
  // mixer repeats them first).
  const auto two_heads = [](const at::Tensor& t) { return at::cat({t, t}, 2); };
  EXPECT_NE(error_of([&] {
              gated_delta_rule2_chunked(in.q, in.k, two_heads(in.v), in.g, in.b, two_heads(in.w), 4, std::nullopt);
            }).find("gated_delta_rule2_chunked: q and k with 1 key heads for v's 2 value heads; expected one key "
                    "head per value head"),
            std::string::npos);
}

// nk = 2, nv = 4 (two value heads per key head), dk = 8, dv = 6, chunks of 4.
std::shared_ptr<TransformerConfig> gdn2_config() {
  auto c = testing::small_config();
  c->experimental_attention_variant = "gdn2";
  c->linear_num_key_heads = 2;
  c->linear_num_value_heads = 4;
  c->linear_key_head_dim = 8;
  c->linear_value_head_dim = 6;
  c->linear_conv_kernel_dim = 4;
  c->linear_chunk_size = 4;
  return c;
}

std::shared_ptr<SequenceMixer> build_mixer(const std::shared_ptr<TransformerConfig>& config) {
  return GatedDeltaNet2::builder(gated_delta_net_submodules(LocalBackend{}))(LayerArgs{.config = config});
}

TEST(GatedDeltaNet2, HasMegatronsParameters) {
  auto mixer = build_mixer(gdn2_config());
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& param : mixer->named_parameters()) shapes[param.key()] = param.value().sizes().vec();
  // nk dk = 16, nv dv = 24: in_proj = q k v z f b w = 16 + 16 + 24 + 24 + 16 + 16 + 24 = 136 rows;
  // conv channels = 2*16 + 24 = 56; dt_bias per key channel, A_log per key head.
  std::map<std::string, std::vector<int64_t>> expected{
      {"in_proj.weight", {136, 32}}, {"conv1d.weight", {56, 1, 4}}, {"dt_bias", {16}},
      {"A_log", {2}},                {"out_norm.weight", {6}},      {"out_proj.weight", {32, 24}}};
  EXPECT_EQ(shapes, expected);
}

// Megatron's _reset_dt_bias (softplus(dt_bias) a step size in [1e-3, 0.1]) and A_log's range.
TEST(GatedDeltaNet2, InitialisesTheGatesAsMegatron) {
  auto mixer = build_mixer(gdn2_config());
  auto params = mixer->named_parameters();
  auto dt = at::softplus(params["dt_bias"].to(at::kDouble));
  EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-5));
  EXPECT_LE(dt.max().item<double>(), 0.1 * (1 + 1e-5));
  auto A = at::exp(params["A_log"].to(at::kDouble));
  EXPECT_GE(A.min().item<double>(), 1.0 - 1e-6);
  EXPECT_LE(A.max().item<double>(), 16.0 + 1e-5);
}

TEST(GatedDeltaNet2, MapsTheSequenceToTheHiddenSize) {
  auto config = gdn2_config();
  auto mixer = build_mixer(config);
  ForwardContext ctx;
  auto out = mixer->forward(at::randn({2, 11, config->hidden_size}), ctx);
  EXPECT_EQ(out.output.sizes(), (std::vector<int64_t>{2, 11, config->hidden_size}));
  EXPECT_FALSE(out.bias.has_value());
}

TEST(GatedDeltaNet2, DecodingTokenByTokenMatchesTheSequence) {
  at::manual_seed(2);
  auto config = gdn2_config();
  const auto device = testing::test_device();
  GatedDeltaNet2 mixer(LayerArgs{.config = config}, gated_delta_net_submodules(LocalBackend{}));
  mixer.to(device);
  auto hidden = at::randn({2, 23, config->hidden_size}, at::TensorOptions().device(device));
  ForwardContext ctx;
  auto full = mixer.forward(hidden, ctx).output;
  auto state = mixer.initial_state(hidden.size(0), device);
  std::vector<at::Tensor> steps;
  for (int64_t t = 0; t < hidden.size(1); ++t) steps.push_back(mixer.forward_recurrent(hidden.narrow(1, t, 1), state).output);
  EXPECT_TRUE(at::allclose(at::cat(steps, 1), full, 1e-5, 1e-5)) << max_difference(at::cat(steps, 1), full);
}

// Through the inference cache, as generation runs it: a prompt prefilled (chunked, from an empty
// cached state), then one-token steps continuing it.
TEST(GatedDeltaNet2, PrefillThenDecodeThroughTheCacheMatchesTheSequence) {
  at::manual_seed(3);
  auto config = gdn2_config();
  auto mixer = build_mixer(config);
  auto hidden = at::randn({2, 30, config->hidden_size});
  ForwardContext plain;
  auto full = mixer->forward(hidden, plain).output;

  InferenceCache cache;
  ForwardContext ctx;
  ctx.cache = &cache;
  std::vector<at::Tensor> parts{mixer->forward(hidden.narrow(1, 0, 18), ctx).output};
  for (int64_t t = 18; t < hidden.size(1); ++t) parts.push_back(mixer->forward(hidden.narrow(1, t, 1), ctx).output);
  auto decoded = at::cat(parts, 1);
  EXPECT_TRUE(at::allclose(decoded, full, 1e-5, 1e-5)) << max_difference(decoded, full);
}

// Packed documents: the conv and the rule restart at each document, as if each ran alone.
TEST(GatedDeltaNet2, PackedDocumentsMatchEachDocumentAlone) {
  at::manual_seed(4);
  auto config = gdn2_config();
  auto mixer = build_mixer(config);
  auto hidden = at::randn({1, 21, config->hidden_size});
  ForwardContext packed_ctx;
  packed_ctx.cu_seqlens = at::tensor(std::vector<int64_t>{0, 6, 21});
  auto packed = mixer->forward(hidden, packed_ctx).output;
  const int64_t bounds[] = {0, 6, 21};
  for (int64_t doc = 0; doc < 2; ++doc) {
    ForwardContext alone_ctx;
    auto alone = mixer->forward(hidden.narrow(1, bounds[doc], bounds[doc + 1] - bounds[doc]), alone_ctx).output;
    auto part = packed.narrow(1, bounds[doc], bounds[doc + 1] - bounds[doc]);
    EXPECT_TRUE(at::allclose(part, alone, 1e-5, 1e-5)) << "document " << doc << ": " << max_difference(part, alone);
  }
}

TEST(GatedDeltaNet2, RejectsValueHeadsThatDoNotShareKeyHeadsEvenly) {
  auto config = gdn2_config();
  config->linear_num_value_heads = 5;
  EXPECT_NE(error_of([&] { build_mixer(config); })
                .find("GatedDeltaNet2: config.linear_num_value_heads (5) must be a multiple of linear_num_key_heads (2)"),
            std::string::npos);
}

}  // namespace
}  // namespace strata
