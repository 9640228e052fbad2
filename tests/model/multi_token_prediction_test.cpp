// Multi-token prediction: which layers each depth has, the depth's arithmetic, which tokens a
// depth's loss reads, canonical names, and that it trains (alone and data-parallel).
#include "strata/model/multi_token_prediction.h"

#include <gtest/gtest.h>

#include "strata/backends/local_backend.h"
#include "strata/model/build_model.h"
#include "strata/model/layer_specs.h"
#include "strata/train/data.h"
#include "strata/train/trainer.h"
#include "test_util.h"

namespace strata {
namespace {

std::shared_ptr<TransformerConfig> with_pattern(const std::string& pattern) {
  auto c = testing::small_config();
  c->hybrid_layer_pattern = pattern;
  c->num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  return c;
}

std::shared_ptr<LanguageModel> local_model(std::shared_ptr<const TransformerConfig> config) {
  return std::make_shared<LanguageModel>(config, language_model_spec(default_layer_registry(LocalBackend{}, *config),
                                                                     *config));
}

std::vector<std::string> kinds(const std::vector<PatternLayer>& depth) {
  std::vector<std::string> out;
  for (const auto& layer : depth)
    out.push_back(cat(layer.sequence ? std::string(1, symbol(*layer.sequence)) : "",
                      layer.channel ? std::string(1, symbol(*layer.channel)) : ""));
  return out;
}

TEST(MtpDepths, AHybridPatternGivesThemAfterTheSlash) {
  auto depths = resolve_mtp_depths(*with_pattern("[*-]M*-/[*E]/[*E]"));
  ASSERT_EQ(depths.size(), 2u);
  for (const auto& depth : depths) EXPECT_EQ(kinds(depth), std::vector<std::string>{"*E"});
  EXPECT_TRUE(resolve_mtp_depths(*with_pattern("[*-]M*-")).empty());
}

TEST(MtpDepths, AModelWithoutAPatternRepeatsItsLastLayer) {
  auto c = testing::small_config();
  c->num_layers = 3;
  c->mtp_num_layers = 2;
  c->num_moe_experts = 4;
  c->moe_ffn_hidden_size = 16;
  c->moe_layer_freq.every = 3;  // layers 0 MoE, 1 and 2 dense: the last is [*-]
  auto depths = resolve_mtp_depths(*c);
  ASSERT_EQ(depths.size(), 2u);
  EXPECT_EQ(kinds(depths[0]), std::vector<std::string>{"*-"});
  EXPECT_EQ(depths[1].front().first_canonical, 0);
}

TEST(MtpDepths, AContradictionOrAMissingPatternPartIsRefused) {
  auto c = with_pattern("[*-]/[*-]");
  c->mtp_num_layers = 3;
  EXPECT_NE(testing::error_of([&] { resolve_mtp_depths(*c); })
                .find("mtp_num_layers = 3 contradicts the layer pattern \"[*-]/[*-]\", which has 1 MTP depths"),
            std::string::npos);
  auto hybrid = with_pattern("M*-");
  hybrid->mtp_num_layers = 1;
  EXPECT_NE(testing::error_of([&] { resolve_mtp_depths(*hybrid); }).find("the pattern \"M*-\" has none"),
            std::string::npos);
}

// With no layers in the depth, a depth is final_layernorm(eh_proj([enorm(e), hnorm(h)])): the
// embedding half first, as Megatron and DeepSeek-V3 have it.
TEST(MultiTokenPredictionLayer, ProjectsTheNormedEmbeddingThenTheNormedHiddenStates) {
  auto config = std::shared_ptr<const TransformerConfig>(testing::small_config());
  const auto norm = configured_norm(LocalBackend{});
  MultiTokenPredictionLayer layer(config, TransformerBlockSubmodules{}, norm, {});
  auto h = at::randn({2, 5, 32}), e = at::randn({2, 5, 32});
  ForwardContext ctx;
  auto out = layer.forward(h, e, ctx);
  const auto params = layer.named_parameters();
  auto rms = [&](const at::Tensor& x, const std::string& name) {
    return x * at::rsqrt(x.square().mean(-1, true) + config->layernorm_epsilon) * params[name + ".weight"];
  };
  auto expected = rms(at::linear(at::cat({rms(e, "enorm"), rms(h, "hnorm")}, -1), params["eh_proj.weight"]),
                      "final_layernorm");
  EXPECT_TRUE(at::allclose(out, expected, 1e-5, 1e-6)) << (out - expected).abs().max();
}

// Depth d's loss at position t predicts labels[t + 1 + d] from tokens up to t + d: with one
// labelled position p, it reads token p - 1 but not token p.
TEST(MultiTokenPrediction, EachDepthPredictsItsTokenFromTheTokensBeforeIt) {
  auto model = local_model(with_pattern("[*-]/[*-]/[*-]"));
  model->eval();  // no dropout; MTP runs whenever labels are given
  const int64_t p = 6;
  auto tokens = at::randint(1, 64, {1, 10}, at::kLong);
  auto labels = at::full({1, 10}, -100, at::kLong);
  labels[0][p] = 17;
  auto depth_losses = [&](const at::Tensor& ids) {
    ForwardContext ctx;
    ctx.labels = labels;
    model->forward(ids, ctx);
    std::vector<double> out;
    for (const auto& l : ctx.mtp_losses) out.push_back(l.item<double>());
    return out;
  };
  const auto base = depth_losses(tokens);
  ASSERT_EQ(base.size(), 2u);
  auto changed_at = [&](int64_t i) {
    auto ids = tokens.clone();
    ids[0][i] = ids[0][i].item<int64_t>() % 63 + 1;
    return depth_losses(ids);
  };
  const auto after_p = changed_at(p), before_p = changed_at(p - 1);
  for (size_t d = 0; d < 2; ++d) {
    EXPECT_EQ(after_p[d], base[d]) << "depth " << d + 1 << " read the token it predicts";
    EXPECT_NE(before_p[d], base[d]) << "depth " << d + 1 << " ignored the token before it";
  }
  // Depth 2 at position p - 3 reads tokens up to p - 1 only; a change at p - 3 reaches both depths
  // through the decoder and depth 1, one before the first position that counts does not count at all.
  EXPECT_NE(changed_at(p - 3)[1], base[1]);
}

// With learned absolute positions a depth embeds the tokens d ahead at their own positions, as
// Megatron rolls the position ids with the input ids: depth 1's loss for label p (at position
// p - 2) reads position row p - 1, which no main-decoder position up to p - 2 reads, and not row p.
TEST(MultiTokenPrediction, ADepthEmbedsTheTokensAheadAtTheirPositions) {
  auto config = with_pattern("[*-]/[*-]");
  config->position_embedding_type = PositionEmbeddingType::LearnedAbsolute;
  config->max_position_embeddings = 16;
  auto model = local_model(config);
  model->eval();
  const int64_t p = 6;
  auto tokens = at::randint(1, 64, {1, 10}, at::kLong);
  auto labels = at::full({1, 10}, -100, at::kLong);
  labels[0][p] = 17;
  auto table = model->canonical_state_dict().at("embedding.position_embeddings.weight");
  auto depth_loss = [&] {
    ForwardContext ctx;
    ctx.labels = labels;
    model->forward(tokens, ctx);
    return ctx.mtp_losses.at(0).item<double>();
  };
  const double base = depth_loss();
  at::NoGradGuard no_grad;
  table[p] += 1.0;
  EXPECT_EQ(depth_loss(), base) << "depth 1 read the position of the token it predicts";
  table[p - 1] += 1.0;
  EXPECT_NE(depth_loss(), base) << "depth 1 did not embed the token ahead at its position";
}

TEST(MultiTokenPrediction, LeavesTheLogitsAloneAndAddsItsScaledMeanLoss) {
  auto config = with_pattern("[*-]/[*-]/[*-]");
  config->mtp_loss_scaling_factor = 0.3;
  auto model = local_model(config);
  model->eval();
  auto ids = at::randint(1, 64, {2, 9}, at::kLong);
  auto plain = model->forward(ids);
  ForwardContext ctx;
  ctx.labels = ids;
  auto with_mtp = model->forward(ids, ctx);
  EXPECT_TRUE(at::equal(plain, with_mtp));
  ASSERT_EQ(ctx.mtp_losses.size(), 2u);
  ASSERT_EQ(ctx.aux_losses.size(), 1u);
  const double mean = (ctx.mtp_losses[0].item<double>() + ctx.mtp_losses[1].item<double>()) / 2;
  EXPECT_NEAR(ctx.aux_losses[0].item<double>(), 0.3 * mean, 1e-6);
}

TEST(MultiTokenPrediction, FusedAndUnfusedDepthsShareCanonicalNames) {
  auto fused = local_model(with_pattern("[*-]/[*-]"))->canonical_state_dict();
  auto unfused = local_model(with_pattern("[*-]/*-"))->canonical_state_dict();
  std::vector<std::string> a, b;
  for (const auto& [name, t] : fused) a.push_back(name);
  for (const auto& [name, t] : unfused) b.push_back(name);
  EXPECT_EQ(a, b);
  for (const char* name : {"mtp.layers.0.enorm.weight", "mtp.layers.0.hnorm.weight", "mtp.layers.0.eh_proj.weight",
                           "mtp.layers.0.final_layernorm.weight",
                           "mtp.layers.0.mtp_model_layer.layers.0.self_attention.linear_qkv.weight",
                           "mtp.layers.0.mtp_model_layer.layers.1.mlp.linear_fc1.weight"})
    EXPECT_TRUE(fused.count(name)) << name;
  EXPECT_EQ(fused.at("mtp.layers.0.eh_proj.weight").sizes(), (at::IntArrayRef{32, 64}));
}

TEST(MultiTokenPrediction, ALanguageModelWithoutItsSpecIsRefused) {
  auto config = with_pattern("[*-]/[*-]");
  EXPECT_NE(testing::error_of([&] {
              LanguageModel(config, decoder_spec(default_layer_registry(LocalBackend{}, *config), *config));
            }).find("the config asks for 1 multi-token prediction depths, the model spec has 0"),
            std::string::npos);
}

TEST(MultiTokenPrediction, BothLossesFallInTraining) {
  for (const bool hybrid : {true, false}) {
    auto config = hybrid ? with_pattern("[*-]M-/[*-]/[*-]") : testing::small_config();
    if (!hybrid) config->mtp_num_layers = 2;  // each depth like the last of its 2 layers
    testing::use_small_hybrid_mixers(*config);
    at::manual_seed(3);
    auto model = build_language_model(config);
    train::MqarData data(64, 4, 3);
    train::TrainOptions o;
    o.train_iters = 40;
    o.micro_batch_size = 8;
    o.seq_length = 32;
    o.progress = false;
    o.eval_iters = 1;
    auto result = train::train(*model, data, o);
    const auto& first = result.steps.front();
    const auto& last = result.steps.back();
    ASSERT_EQ(last.mtp_losses.size(), 2u) << (hybrid ? "hybrid" : "gpt");
    EXPECT_LT(last.loss, first.loss - 0.3);
    for (size_t d = 0; d < 2; ++d) EXPECT_LT(last.mtp_losses[d], first.mtp_losses[d] - 0.3) << "depth " << d + 1;
  }
}

}  // namespace
}  // namespace strata
