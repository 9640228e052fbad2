// DeepSeek-V4's hash routing (moe_hash_routed_layers): the router's experts and weights against a
// hand computation, its table kept exact through dtype conversions, the MoE layers it applies to,
// and a V4-shaped model with a hash-routed first layer training and decoding incrementally as its
// full forward does.
#include "strata/layers/hash_router.h"

#include <gtest/gtest.h>

#include <cmath>

#include "strata/backends/local_backend.h"
#include "strata/core/config_json.h"
#include "strata/layers/moe.h"
#include "strata/model/build_model.h"
#include "strata/model/layer_allocation.h"
#include "strata/model/loss.h"
#include "layers/shared_kv_test_config.h"
#include "test_util.h"

namespace strata {
namespace {

TransformerConfig router_config(int64_t experts, int64_t topk, int64_t vocab) {
  TransformerConfig c;
  c.hidden_size = 2;
  c.num_moe_experts = experts;
  c.moe_router_topk = topk;
  c.vocab_size = vocab;
  c.moe_router_score_function = "sqrtsoftplus";
  c.moe_router_norm_topk_prob = true;
  c.moe_router_topk_scaling_factor = 1.5;
  return c;
}

void set(torch::nn::Module& module, const std::string& name, const at::Tensor& value) {
  at::NoGradGuard no_grad;
  auto params = module.named_parameters();
  auto buffers = module.named_buffers();
  auto* target = params.find(name) ? params.find(name) : buffers.find(name);
  ASSERT_NE(target, nullptr) << name;
  target->copy_(value);
}

double sqrt_softplus(double logit) { return std::sqrt(std::log1p(std::exp(logit))); }

// E = 4 experts, k = 2, hidden 2. Gate rows e0 = (1, 0), e1 = (0, 1), e2 = (-1, 0), e3 = (0, -1);
// the table sends token id 3 to (2, 0), id 1 to (3, 1), id 0 to (0, 1).
//   token 0: x = (1, 2), id 3: logits (1, 2, -1, -2); experts (2, 0), though 1 and 0 score
//            highest; weights 1.5 * (s(-1), s(1)) / (s(-1) + s(1)), s = sqrt(softplus).
//   token 1: x = (0, 0), id 1: every logit 0, every score s(0); experts (3, 1), 0.75 each.
//   token 2: x = (1, 2), id 0: the hidden state of token 0, other experts: (0, 1), weights
//            1.5 * (s(1), s(2)) / (s(1) + s(2)).
TEST(HashRouter, ExpertsComeFromTheTableAndWeightsFromTheGatesScores) {
  HashRouter router(router_config(4, 2, 5));
  set(router, "weight", at::tensor({1.f, 0.f, 0.f, 1.f, -1.f, 0.f, 0.f, -1.f}).view({4, 2}));
  set(router, "tid2eid", at::tensor({0, 1, 3, 1, 2, 3, 2, 0, 1, 2}, at::kLong).view({5, 2}));
  auto x = at::tensor({1.f, 2.f, 0.f, 0.f, 1.f, 2.f}).view({3, 2});
  auto routing = router.forward(x, at::tensor({3, 1, 0}, at::kLong));

  EXPECT_TRUE(at::equal(routing.indices, at::tensor({2, 0, 3, 1, 0, 1}, at::kLong).view({3, 2})));
  const double s_m1 = sqrt_softplus(-1.0), s0 = sqrt_softplus(0.0), s1 = sqrt_softplus(1.0), s2 = sqrt_softplus(2.0);
  auto expected = at::tensor({1.5 * s_m1 / (s_m1 + s1), 1.5 * s1 / (s_m1 + s1), 1.5 * s0 / (2 * s0),
                              1.5 * s0 / (2 * s0), 1.5 * s1 / (s1 + s2), 1.5 * s2 / (s1 + s2)},
                             at::kDouble)
                      .view({3, 2});
  EXPECT_TRUE(at::allclose(routing.weights.to(at::kDouble), expected, 1e-6, 1e-7))
      << routing.weights << "\nexpected\n" << expected;
  EXPECT_FALSE(routing.probs.defined());  // no load-balancing loss

  // The gate learns through the weights; the table is a buffer, without gradient.
  routing.weights.select(1, 0).sum().backward();
  EXPECT_GT(router.named_parameters()["weight"].grad().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(router.named_parameters().size(), 1u);
}

TEST(HashRouter, WithoutRenormalisationTheWeightsAreTheScaledScores) {
  auto c = router_config(4, 2, 5);
  c.moe_router_norm_topk_prob = false;
  c.moe_router_score_function = "sigmoid";
  HashRouter router(c);
  set(router, "weight", at::tensor({1.f, 0.f, 0.f, 1.f, -1.f, 0.f, 0.f, -1.f}).view({4, 2}));
  set(router, "tid2eid", at::tensor({0, 1, 3, 1, 2, 3, 2, 0, 1, 2}, at::kLong).view({5, 2}));
  auto routing = router.forward(at::tensor({1.f, 2.f}).view({1, 2}), at::tensor({4}, at::kInt));
  const auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  EXPECT_TRUE(at::allclose(routing.weights.to(at::kDouble),
                           at::tensor({1.5 * sigmoid(2.0), 1.5 * sigmoid(-1.0)}, at::kDouble).view({1, 2}), 1e-6, 1e-7));
}

TEST(HashRouter, InitialTableGivesEachTokenDistinctExperts) {
  at::manual_seed(3);
  HashRouter router(router_config(5, 3, 40));
  const auto& table = router.table();
  EXPECT_EQ(table.scalar_type(), at::kLong);
  EXPECT_EQ(table.sizes(), (std::vector<int64_t>{40, 3}));
  EXPECT_GE(table.min().item<int64_t>(), 0);
  EXPECT_LE(table.max().item<int64_t>(), 4);
  auto sorted = std::get<0>(table.sort(1));
  EXPECT_TRUE((sorted.narrow(1, 1, 2) != sorted.narrow(1, 0, 2)).all().item<bool>());
  // Not every token on the same experts (HF's zeros would be).
  EXPECT_GT(std::get<0>(at::_unique(table.select(1, 0))).numel(), 1);
}

// Module::to converts every buffer to the dtype, integers too; bf16 holds integers exactly only
// to 256, so expert 257 would read as 256.
TEST(HashRouter, TableStaysExactInt64ThroughDtypeConversions) {
  auto config = std::make_shared<TransformerConfig>(router_config(300, 2, 3));
  config->moe_ffn_hidden_size = 4;
  config->num_layers = 1;
  config->add_bias_linear = false;
  config->moe_hash_routed_layers = {0};
  auto moe = std::dynamic_pointer_cast<MoE>(MoE::builder({})(LayerArgs{.config = config}));
  ASSERT_TRUE(moe->hash_routed());
  auto table = at::tensor({257, 299, 1, 2, 0, 298}, at::kLong).view({3, 2});
  set(*moe, "router.tid2eid", table);
  for (auto dtype : {at::kBFloat16, at::kHalf, at::kDouble, at::kFloat}) {
    moe->to(dtype);
    auto buffers = moe->named_buffers();
    EXPECT_EQ(buffers["router.tid2eid"].scalar_type(), at::kLong) << dtype;
    EXPECT_TRUE(at::equal(buffers["router.tid2eid"], table)) << dtype;
    EXPECT_EQ(moe->named_parameters()["router.weight"].scalar_type(), dtype);
  }
  moe->to(at::kCPU, at::kBFloat16);
  EXPECT_TRUE(at::equal(moe->named_buffers()["router.tid2eid"], table));
}

// ---- The MoE layers it applies to ----------------------------------------------------------

std::shared_ptr<TransformerConfig> moe_config() {
  auto c = testing::small_config();
  c->num_layers = 4;
  c->num_moe_experts = 4;
  c->moe_router_topk = 2;
  c->moe_ffn_hidden_size = 16;
  c->moe_router_score_function = "sqrtsoftplus";
  c->moe_router_enable_expert_bias = true;
  c->moe_hash_routed_layers = {1};
  return c;
}

std::shared_ptr<MoE> build_moe(std::shared_ptr<TransformerConfig> config, LayerArgs args) {
  args.config = std::move(config);
  return std::dynamic_pointer_cast<MoE>(MoE::builder({})(args));
}

TEST(HashRoutedMoE, ChosenByCanonicalIndexInTheMainDecoderOnly) {
  auto config = moe_config();
  // Canonical index 1 is layer number 2 (1-based).
  auto hashed = build_moe(config, {.layer_number = 2});
  EXPECT_TRUE(hashed->hash_routed());
  auto buffers = hashed->named_buffers();
  EXPECT_TRUE(buffers.contains("router.tid2eid"));
  EXPECT_FALSE(buffers.contains("router.expert_bias"));  // HF's hash router has no bias either
  EXPECT_FALSE(build_moe(config, {.layer_number = 1})->hash_routed());
  // An MTP depth numbers its layers from 1 again: its layer 2 is not the decoder's.
  EXPECT_FALSE(build_moe(config, {.layer_number = 2, .is_mtp_layer = true})->hash_routed());
}

TEST(HashRoutedMoE, AForwardWithoutTokenIdsIsRefusedAndMismatchedIdsToo) {
  auto moe = build_moe(moe_config(), {.layer_number = 2});
  auto x = at::randn({2, 3, 32});
  ForwardContext ctx;
  auto message = testing::error_of([&] { moe->forward(x, ctx); });
  EXPECT_NE(message.find("MoE (layer 2)"), std::string::npos) << message;
  EXPECT_NE(message.find("ForwardContext::input_ids"), std::string::npos) << message;
  ctx.input_ids = at::zeros({2, 4}, at::kLong);
  message = testing::error_of([&] { moe->forward(x, ctx); });
  EXPECT_NE(message.find("[2, 4]"), std::string::npos) << message;
  ctx.input_ids = at::randint(64, {2, 3}, at::kLong);
  EXPECT_EQ(moe->forward(x, ctx).output.sizes(), x.sizes());
}

// HF records only its top-k routers' logits for the load-balancing loss.
TEST(HashRoutedMoE, AddsNoLoadBalancingLoss) {
  auto config = moe_config();
  config->moe_aux_loss_coeff = 0.01;
  auto x = at::randn({2, 3, 32});
  ForwardContext ctx{.input_ids = at::randint(64, {2, 3}, at::kLong)};
  auto hashed = build_moe(config, {.layer_number = 2});
  hashed->train();
  hashed->forward(x, ctx);
  EXPECT_TRUE(ctx.aux_losses.empty());
  auto scored = build_moe(config, {.layer_number = 4});
  scored->train();
  scored->forward(x, ctx);
  EXPECT_EQ(ctx.aux_losses.size(), 1u);
}

// ---- The config field ----------------------------------------------------------------------

TEST(HashRoutedMoE, ConfigFieldRoundTripsAndBadIndicesAreNamed) {
  auto c = *moe_config();
  c.hybrid_layer_pattern = "[*E][*E]";
  c.moe_hash_routed_layers = {1, 3};
  EXPECT_EQ(config_from_json(to_json(c), "test").moe_hash_routed_layers, c.moe_hash_routed_layers);
  EXPECT_TRUE(config_from_json({{"moe_hash_routed_layers", nullptr}}, "test", c).moe_hash_routed_layers.empty());
  EXPECT_NE(testing::error_of([&] { config_from_json({{"moe_hash_routed_layers", 1}}, "cfg.json"); })
                .find("expected a list of canonical layer indices"),
            std::string::npos);
  validate(c);
  EXPECT_NO_THROW(resolve_layer_pattern(c));

  auto bad = c;
  bad.moe_hash_routed_layers = {1, 4};
  EXPECT_NE(testing::error_of([&] { validate(bad); }).find("moe_hash_routed_layers[1] = 4"), std::string::npos);
  bad.moe_hash_routed_layers = {3, 3};
  EXPECT_NE(testing::error_of([&] { validate(bad); }).find("listed twice"), std::string::npos);
  bad.moe_hash_routed_layers = {2};  // the second attention
  auto message = testing::error_of([&] { resolve_layer_pattern(bad); });
  EXPECT_NE(message.find("canonical layer 2 of pattern \"[*E][*E]\" is not a MoE"), std::string::npos) << message;
  bad.hybrid_layer_pattern = "[*-][*-]";
  bad.num_moe_experts = 0;
  bad.moe_hash_routed_layers = {1};
  message = testing::error_of([&] { validate(bad); });
  EXPECT_NE(message.find("no MoE layer"), std::string::npos) << message;
}

// ---- A DeepSeek-V4-shaped model whose first MoE is hash-routed -------------------------------

std::shared_ptr<TransformerConfig> v4_model_config() {
  auto c = testing::small_shared_kv_config();  // hidden 32, 4 heads, vocab 64
  c->hybrid_layer_pattern = "[WE][CE][HE]";
  c->num_layers = 6;
  c->num_moe_experts = 4;
  c->moe_router_topk = 2;
  c->moe_ffn_hidden_size = 16;
  c->moe_shared_expert_intermediate_size = 16;
  c->moe_router_score_function = "sqrtsoftplus";
  c->moe_router_enable_expert_bias = true;
  c->moe_router_topk_scaling_factor = 1.5;
  c->activation_func_clamp_value = 10.0;
  c->enable_mhc_connections = true;
  c->mhc_num_residual_streams = 4;
  c->moe_hash_routed_layers = {1};  // the MoE of [WE]
  return c;
}

TEST(HashRoutedModel, TrainsThroughTheGateAndExpertsOfTheHashRoutedLayer) {
  at::manual_seed(11);
  auto model = build_language_model(v4_model_config());
  model->to(testing::test_device());
  auto state = model->canonical_state_dict();
  ASSERT_TRUE(state.count("decoder.layers.1.mlp.router.tid2eid"));
  EXPECT_FALSE(state.count("decoder.layers.1.mlp.router.expert_bias"));
  EXPECT_TRUE(state.count("decoder.layers.3.mlp.router.expert_bias"));
  EXPECT_FALSE(state.count("decoder.layers.3.mlp.router.tid2eid"));

  auto ids = at::randint(64, {2, 13}, at::TensorOptions(at::kLong).device(testing::test_device()));
  auto logits = model->forward(ids);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 13, 64}));
  causal_lm_loss(logits, ids).backward();
  for (const char* name : {"decoder.layers.1.mlp.router.weight", "decoder.layers.1.mlp.experts.linear_fc1.weight",
                           "decoder.layers.1.mlp.shared_experts.linear_fc1.weight"}) {
    auto grad = state.at(name).grad();
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << name;
  }

  // The table decides: other experts for the same tokens give other logits.
  at::NoGradGuard no_grad;
  auto& table = state.at("decoder.layers.1.mlp.router.tid2eid");
  auto before = model->forward(ids);
  table.copy_((table + 1).remainder(4));
  EXPECT_FALSE(at::allclose(model->forward(ids), before));
}

// Prompt of 9 tokens (past the window of 6 and two CSA windows), then one token at a time to 30
// (7 CSA and 3 HCA entries): each position's experts come from its own token id, so every step
// routes as the full forward does.
TEST(HashRoutedModel, IncrementalDecodingEqualsTheFullForward) {
  at::manual_seed(12);
  auto model = build_language_model(v4_model_config());
  model->to(testing::test_device());
  model->eval();
  at::NoGradGuard no_grad;
  auto ids = at::randint(64, {2, 30}, at::TensorOptions(at::kLong).device(testing::test_device()));
  auto full = model->forward(ids);
  InferenceCache cache;
  ForwardContext prompt{.cache = &cache};
  std::vector<at::Tensor> steps{model->forward(ids.narrow(1, 0, 9), prompt)};
  for (int64_t t = 9; t < ids.size(1); ++t) {
    ForwardContext step{.cache = &cache};
    steps.push_back(model->forward(ids.narrow(1, t, 1), step));
  }
  auto decoded = at::cat(steps, 1);
  EXPECT_TRUE(at::allclose(decoded, full, 1e-5, 1e-5)) << (decoded - full).abs().max();
  EXPECT_EQ(cache.sequence_length(), 30);
}

}  // namespace
}  // namespace strata
