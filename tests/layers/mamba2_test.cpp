// The Mamba2 mixer: chunked SSD against its recurrent definition, the mixer against HF Nemotron-H
// (tests/fixtures/hf/nemotron_h, layer 0), token-by-token decoding against the full sequence, and
// a hybrid model decoding with its inference cache against recomputing the whole sequence.
#include "strata/layers/mamba2.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "strata/backends/local_backend.h"
#include "strata/core/error.h"
#include "strata/infer/generate.h"
#include "strata/io/safetensors.h"
#include "strata/model/build_model.h"
#include "test_util.h"

namespace strata {
namespace {

double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  return ((actual.to(at::kDouble) - expected.to(at::kDouble)).norm() / expected.to(at::kDouble).norm()).item<double>();
}

struct SsdInputs {
  at::Tensor x, dt, A, B, C, initial_state;
};

SsdInputs random_ssd_inputs(int64_t seq, at::Device device) {
  const int64_t batch = 2, heads = 4, head_dim = 3, groups = 2, state = 5;
  auto f32 = at::TensorOptions().device(device);
  return {at::randn({batch, seq, heads, head_dim}, f32), at::softplus(at::randn({batch, seq, heads}, f32)),
          -at::exp(0.5 * at::randn({heads}, f32)), at::randn({batch, seq, groups, state}, f32),
          at::randn({batch, seq, groups, state}, f32), at::randn({batch, heads, head_dim, state}, f32)};
}

TEST(Ssd, ChunkedMatchesRecurrentWithGradients) {
  const auto device = testing::test_device();
  for (int64_t seq : {1, 5, 32, 70}) {
    for (int64_t chunk : {16, 32}) {
      for (bool with_initial : {false, true}) {
        SCOPED_TRACE(cat("T=", seq, " chunk=", chunk, " initial_state=", with_initial));
        auto in = random_ssd_inputs(seq, device);
        std::vector<at::Tensor> leaves{in.x, in.dt, in.A, in.B, in.C};
        if (with_initial) leaves.push_back(in.initial_state);
        for (auto& t : leaves) t.requires_grad_(true);
        auto initial = with_initial ? std::optional<at::Tensor>(in.initial_state) : std::nullopt;

        auto chunked = ssd_chunked(in.x, in.dt, in.A, in.B, in.C, chunk, initial);
        auto recurrent = ssd_recurrent(in.x, in.dt, in.A, in.B, in.C, initial);
        EXPECT_TRUE(at::allclose(chunked.y, recurrent.y, 1e-5, 1e-5)) << (chunked.y - recurrent.y).abs().max();
        EXPECT_TRUE(at::allclose(chunked.final_state, recurrent.final_state, 1e-5, 1e-5))
            << (chunked.final_state - recurrent.final_state).abs().max();

        // A random linear functional of both outputs, so every gradient path is exercised.
        auto y_weight = at::randn_like(recurrent.y), state_weight = at::randn_like(recurrent.final_state);
        auto loss = [&](const SsdOutput& o) { return (o.y * y_weight).sum() + (o.final_state * state_weight).sum(); };
        auto grads_chunked = torch::autograd::grad({loss(chunked)}, leaves);
        auto grads_recurrent = torch::autograd::grad({loss(recurrent)}, leaves);
        for (size_t i = 0; i < leaves.size(); ++i)
          EXPECT_TRUE(at::allclose(grads_chunked[i], grads_recurrent[i], 1e-4, 1e-4))
              << "input " << i << ": " << (grads_chunked[i] - grads_recurrent[i]).abs().max();
      }
    }
  }
}

TEST(Ssd, RejectsHeadsThatDoNotSplitIntoGroups) {
  auto in = random_ssd_inputs(4, at::kCPU);
  auto three_groups = in.B.narrow(2, 0, 1).repeat({1, 1, 3, 1});
  try {
    ssd_chunked(in.x, in.dt, in.A, three_groups, three_groups, 16, std::nullopt);
    ADD_FAILURE() << "3 groups for 4 heads were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("number of heads (4) must be a multiple of the number of groups (3)"),
              std::string::npos)
        << e.what();
  }
}

// The Nemotron-H fixture's model and mixer settings, read from its config.json.
std::shared_ptr<TransformerConfig> nemotron_h_config() {
  std::ifstream file(testing::fixture("nemotron_h") + "/model/config.json");
  auto json = nlohmann::json::parse(file);
  auto c = std::make_shared<TransformerConfig>();
  use_llama_style(*c);
  c->num_layers = 1;
  c->hidden_size = json["hidden_size"];
  c->layernorm_epsilon = json["layer_norm_epsilon"];
  c->mamba_num_heads = json["mamba_num_heads"];
  c->mamba_head_dim = json["mamba_head_dim"];
  c->mamba_state_dim = json["ssm_state_size"];
  c->mamba_num_groups = json["n_groups"];
  c->mamba_conv_kernel_dim = json["conv_kernel"];
  c->mamba_chunk_size = json["chunk_size"];
  c->mamba_conv_bias = json["use_conv_bias"];
  c->mamba_proj_bias = json["use_bias"];
  // HF's PyTorch path (torch_forward, which made this fixture on CPU) clamps dt from below at
  // time_step_min; time_step_limit's upper end is infinite (JSON spells it {"__float__":
  // "Infinity"}), the default.
  c->mamba_time_step_limit_min = json["time_step_min"];
  return c;
}

std::shared_ptr<Mamba2Mixer> nemotron_h_mixer(at::Device device) {
  auto mixer = std::make_shared<Mamba2Mixer>(LayerArgs{.config = nemotron_h_config()},
                                             mamba2_submodules(LocalBackend{}));
  auto checkpoint = io::SafetensorsFile::open(testing::fixture("nemotron_h") + "/model/model.safetensors");
  at::NoGradGuard no_grad;
  for (auto& param : mixer->named_parameters())
    param.value().copy_(checkpoint.load("backbone.layers.0.mixer." + param.key()));
  mixer->to(device);
  return mixer;
}

// small_config with Mamba2 fields that fit its hidden size of 32.
std::shared_ptr<TransformerConfig> small_mamba_config() {
  auto c = testing::small_config();
  c->mamba_num_heads = 4;
  c->mamba_head_dim = 8;
  c->mamba_state_dim = 4;
  c->mamba_num_groups = 2;
  c->mamba_chunk_size = 4;  // prefills of a few tokens already span several chunks
  return c;
}

TEST(Mamba2Mixer, HasTheCanonicalParameters) {
  auto mixer = nemotron_h_mixer(at::kCPU);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& param : mixer->named_parameters()) shapes[param.key()] = param.value().sizes().vec();
  // d_inner = 8 heads * 16 = 128; conv channels = 128 + 2 groups * 2 * 16 = 192; in_proj = 128 + 192 + 8.
  std::map<std::string, std::vector<int64_t>> expected{
      {"in_proj.weight", {328, 64}}, {"conv1d.weight", {192, 1, 4}}, {"conv1d.bias", {192}},
      {"dt_bias", {8}},              {"A_log", {8}},                 {"D", {8}},
      {"norm.weight", {128}},        {"out_proj.weight", {64, 128}}};
  EXPECT_EQ(shapes, expected);
}

TEST(Mamba2Mixer, BuildsThroughItsSpec) {
  auto config = small_mamba_config();
  auto mixer = Mamba2Mixer::builder(mamba2_submodules(LocalBackend{}))(LayerArgs{.config = config});
  ForwardContext ctx;
  auto out = mixer->forward(at::randn({2, 11, config->hidden_size}), ctx);
  EXPECT_EQ(out.output.sizes(), (std::vector<int64_t>{2, 11, config->hidden_size}));
  EXPECT_FALSE(out.bias.has_value());
}

TEST(Mamba2Mixer, DerivesTheHeadsFromExpandTwoWhenUnset) {
  auto config = small_mamba_config();
  config->mamba_num_heads = 0;  // 2 * hidden_size 32 / head_dim 8 = 8 heads
  Mamba2Mixer mixer(LayerArgs{.config = config}, mamba2_submodules(LocalBackend{}));
  EXPECT_EQ(mixer.named_parameters()["dt_bias"].size(0), 8);
  EXPECT_EQ(mixer.named_parameters()["in_proj.weight"].size(0), 64 + (64 + 2 * 2 * 4) + 8);
}

TEST(Mamba2Mixer, RejectsHeadsThatDoNotSplitIntoGroups) {
  auto config = small_mamba_config();
  config->mamba_num_heads = 6;
  config->mamba_num_groups = 4;
  try {
    Mamba2Mixer(LayerArgs{.config = config}, mamba2_submodules(LocalBackend{}));
    ADD_FAILURE() << "6 heads in 4 groups were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TransformerConfig.mamba_num_heads = 6: must be a multiple of "
                                         "mamba_num_groups = 4"),
              std::string::npos)
        << e.what();
  }
}

TEST(Mamba2Mixer, ConfigValidationChecksMambaFieldsOnlyForPatternsWithM) {
  auto config = small_mamba_config();
  config->mamba_state_dim = 0;
  config->hybrid_layer_pattern = "*-";
  EXPECT_NO_THROW(validate(*config));
  config->hybrid_layer_pattern = "M-";
  try {
    validate(*config);
    ADD_FAILURE() << "mamba_state_dim = 0 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TransformerConfig.mamba_state_dim = 0: expected a positive value"),
              std::string::npos)
        << e.what();
  }
}

TEST(Mamba2Mixer, MatchesHfNemotronH) {
  const auto device = testing::test_device();
  auto mixer = nemotron_h_mixer(device);
  auto reference = io::SafetensorsFile::open(testing::fixture("nemotron_h") + "/reference.safetensors");
  auto input = reference.load("capture.model.layers.0.mixer.in0").to(device);  // [2, 100, 64]: T not a multiple of 32
  auto expected = reference.load("capture.model.layers.0.mixer.out0");
  ForwardContext ctx;
  auto out = mixer->forward(input, ctx).output.cpu();
  EXPECT_LE(relative_error(out, expected), 1e-5);
}

TEST(Mamba2Mixer, DecodingTokenByTokenMatchesTheSequence) {
  const auto device = testing::test_device();
  auto mixer = nemotron_h_mixer(device);
  auto hidden = at::randn({2, 45, 64}, at::TensorOptions().device(device));
  ForwardContext ctx;
  auto full = mixer->forward(hidden, ctx).output;
  auto state = mixer->initial_state(hidden.size(0), device);
  std::vector<at::Tensor> steps;
  for (int64_t t = 0; t < hidden.size(1); ++t)
    steps.push_back(mixer->forward_recurrent(hidden.narrow(1, t, 1), state).output);
  auto decoded = at::cat(steps, 1);
  EXPECT_TRUE(at::allclose(decoded, full, 1e-5, 1e-5)) << (decoded - full).abs().max();
}

std::shared_ptr<LanguageModel> hybrid_model(const std::string& pattern) {
  auto c = small_mamba_config();
  c->hybrid_layer_pattern = pattern;
  c->num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  c->rotary_percent = 0.5;
  at::manual_seed(6);
  auto model = build_language_model(c);
  model->to(testing::test_device());
  model->eval();
  return model;
}

TEST(Mamba2Model, IncrementalDecodingWithTheCacheEqualsFullRecompute) {
  for (const char* pattern : {"M-*-", "[M-][*-]"}) {
    SCOPED_TRACE(pattern);
    auto model = hybrid_model(pattern);
    at::NoGradGuard no_grad;
    const auto device = testing::test_device();
    auto tokens = at::randint(1, 64, {2, 16}, at::TensorOptions().dtype(at::kLong).device(device));
    auto full = model->forward(tokens);
    // A 6-token prefill (chunked SSD over two chunks of 4 from a zero state), two decode steps
    // (recurrent form), a 5-token block (chunked from the cached state), then decode steps again.
    InferenceCache cache;
    ForwardContext ctx;
    ctx.cache = &cache;
    std::vector<at::Tensor> pieces;
    int64_t position = 0;
    for (int64_t length : {6, 1, 1, 5, 1, 1, 1}) {
      pieces.push_back(model->forward(tokens.narrow(1, position, length), ctx));
      position += length;
    }
    auto incremental = at::cat(pieces, 1);
    EXPECT_TRUE(at::allclose(incremental, full, 1e-5, 1e-5)) << (incremental - full).abs().max();
    EXPECT_EQ(cache.sequence_length(), 16);
    // Layer 1 (canonical numbering, 1-based) is the Mamba2 mixer; its state has the decoding shapes.
    auto& state = cache.state<Mamba2State>(1);
    EXPECT_EQ(state.conv.sizes(), (std::vector<int64_t>{2, 32 + 2 * 2 * 4, 3}));
    EXPECT_EQ(state.ssm.sizes(), (std::vector<int64_t>{2, 4, 8, 4}));
  }
}

TEST(Mamba2Model, GreedyGenerationMatchesArgmaxOfFullRecompute) {
  auto model = hybrid_model("M-*-");
  std::vector<int64_t> prompt{3, 9, 27, 17, 5, 40};
  auto generated = infer::generate(*model, prompt, {.max_new_tokens = 6});
  ASSERT_EQ(generated.size(), 6u);
  at::NoGradGuard no_grad;
  auto sequence = prompt;
  for (auto token : generated) {
    auto logits = model->forward(at::tensor(sequence, at::kLong).unsqueeze(0).to(testing::test_device()));
    EXPECT_EQ(logits[0][-1].argmax().item<int64_t>(), token);
    sequence.push_back(token);
  }
}

}  // namespace
}  // namespace strata
