// The MoE channel mixer: against HF Qwen3-Next's sparse MoE block, against a dense reference
// that runs every expert on every token, its router's load-balancing loss and expert bias, and
// the load-balancing loss under activation recompute.
#include "strata/layers/moe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <variant>

#include "strata/backends/local_backend.h"
#include "strata/core/error.h"
#include "strata/io/hf_config.h"
#include "strata/io/safetensors.h"
#include "strata/model/language_model.h"
#include "strata/model/layer_specs.h"
#include "strata/model/loss.h"
#include "test_util.h"

namespace strata {
namespace {

double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  return ((actual.cpu() - expected.cpu()).norm() / expected.norm()).item<double>();
}

std::shared_ptr<TransformerConfig> moe_config(int64_t topk, const std::string& score_function, bool normalize) {
  auto c = testing::small_config();
  c->num_moe_experts = 4;
  c->moe_router_topk = topk;
  c->moe_ffn_hidden_size = 16;
  c->moe_router_score_function = score_function;
  c->moe_router_norm_topk_prob = normalize;
  return c;
}

std::shared_ptr<MoE> build_moe(std::shared_ptr<TransformerConfig> config) {
  auto built = MoE::builder(moe_submodules(LocalBackend{}, *config))(LayerArgs{.config = config});
  auto moe = std::dynamic_pointer_cast<MoE>(built);
  moe->to(testing::test_device());
  return moe;
}

std::string error_of(std::shared_ptr<TransformerConfig> config) {
  try {
    build_moe(std::move(config));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---- HF Qwen3-Next -------------------------------------------------------------------------

std::shared_ptr<TransformerConfig> qwen3_next_moe_config() {
  auto hf = std::get<io::Qwen3NextConfig>(io::read_hf_config(testing::fixture("qwen3_next") + "/model/config.json"));
  auto c = std::make_shared<TransformerConfig>();
  use_llama_style(*c);
  c->num_layers = hf.base.num_hidden_layers;
  c->hidden_size = hf.base.hidden_size;
  c->activation_func = parse_activation(hf.base.hidden_act, "hidden_act");
  c->num_moe_experts = hf.num_experts;
  c->moe_router_topk = hf.num_experts_per_tok;
  c->moe_ffn_hidden_size = hf.moe_intermediate_size;
  c->moe_shared_expert_intermediate_size = hf.shared_expert_intermediate_size;
  c->moe_shared_expert_gate = true;
  c->moe_router_score_function = "softmax";
  c->moe_router_norm_topk_prob = hf.norm_topk_prob;
  c->moe_aux_loss_coeff = hf.router_aux_loss_coef;
  return c;
}

// HF's per-expert gate_proj / up_proj / down_proj, stacked into the grouped tensors.
void load_qwen3_next_moe(MoE& moe, int64_t num_experts) {
  auto ckpt = io::CheckpointReader::open(testing::fixture("qwen3_next") + "/model");
  const std::string hf = "model.layers.0.mlp.";
  std::vector<at::Tensor> fc1, fc2;
  for (int64_t e = 0; e < num_experts; ++e) {
    const auto expert = hf + "experts." + std::to_string(e) + ".";
    fc1.push_back(at::cat({ckpt.load(expert + "gate_proj.weight"), ckpt.load(expert + "up_proj.weight")}));
    fc2.push_back(ckpt.load(expert + "down_proj.weight"));
  }
  const std::map<std::string, at::Tensor> weights{
      {"router.weight", ckpt.load(hf + "gate.weight")},
      {"experts.linear_fc1.weight", at::stack(fc1)},
      {"experts.linear_fc2.weight", at::stack(fc2)},
      {"shared_experts.linear_fc1.weight",
       at::cat({ckpt.load(hf + "shared_expert.gate_proj.weight"), ckpt.load(hf + "shared_expert.up_proj.weight")})},
      {"shared_experts.linear_fc2.weight", ckpt.load(hf + "shared_expert.down_proj.weight")},
      {"shared_experts_gate.weight", ckpt.load(hf + "shared_expert_gate.weight")},
  };
  auto params = moe.named_parameters();
  ASSERT_EQ(params.size(), weights.size());
  at::NoGradGuard no_grad;
  for (const auto& [name, tensor] : weights) {
    ASSERT_TRUE(params.contains(name)) << name;
    ASSERT_EQ(params[name].sizes(), tensor.sizes()) << name;
    params[name].copy_(tensor);
  }
}

TEST(MoE, MatchesHfQwen3NextSparseMoeBlock) {
  auto config = qwen3_next_moe_config();
  auto moe = build_moe(config);
  load_qwen3_next_moe(*moe, config->num_moe_experts);
  auto ref = io::SafetensorsFile::open(testing::fixture("qwen3_next") + "/reference.safetensors");
  const std::string capture = "capture.model.layers.0.mlp.";
  auto x = ref.load(capture + "in0").to(testing::test_device());

  ForwardContext ctx;
  auto out = moe->forward(x, ctx).output;
  EXPECT_LE(relative_error(out, ref.load(capture + "out0")), 1e-5);

  // The parts, for locating a mismatch. HF 5.17's router returns its logits first (an earlier
  // snapshot of the same file returned the softmax under the name router_logits); our router keeps
  // the logits internal, so compare its probabilities with their softmax.
  auto& router = dynamic_cast<TopKRouter&>(*moe->named_children()["router"]);
  auto& experts = dynamic_cast<GroupedExperts&>(*moe->named_children()["experts"]);
  auto tokens = x.reshape({-1, x.size(-1)});
  auto routing = router.forward(tokens);
  auto hf_logits = ref.load(capture + "gate.out0");
  EXPECT_LE(relative_error(at::matmul(tokens, moe->named_parameters()["router.weight"].t()), hf_logits), 1e-6);
  EXPECT_LE(relative_error(routing.probs, at::softmax(hf_logits, -1)), 1e-6);
  EXPECT_LE(relative_error(experts.forward(tokens, routing.indices, routing.weights), ref.load(capture + "experts.out0")),
            1e-5);
  auto& shared = dynamic_cast<ChannelMixer&>(*moe->named_children()["shared_experts"]);
  EXPECT_LE(relative_error(shared.forward(tokens, ctx).output, ref.load(capture + "shared_expert.out0")), 1e-5);
}

// ---- Dispatch, gradients -------------------------------------------------------------------

// Every expert on every token, combined with routing recomputed from the router weight.
at::Tensor dense_reference(MoE& moe, const TransformerConfig& c, const at::Tensor& x) {
  auto params = moe.named_parameters();
  auto logits = at::matmul(x, params["router.weight"].t());
  auto scores = c.moe_router_score_function == "softmax" ? at::softmax(logits, -1) : at::sigmoid(logits);
  auto [top_scores, top_experts] = at::topk(scores, c.moe_router_topk, -1);
  if (c.moe_router_norm_topk_prob) top_scores = top_scores / top_scores.sum(-1, true);
  auto combine = at::zeros_like(scores).scatter(1, top_experts, top_scores);  // [T, E]

  auto fc1 = params["experts.linear_fc1.weight"], fc2 = params["experts.linear_fc2.weight"];
  const auto F = c.moe_ffn_hidden_size;
  auto out = at::zeros_like(x);
  for (int64_t e = 0; e < c.num_moe_experts; ++e) {
    auto gate = at::matmul(x, fc1[e].narrow(0, 0, F).t()), up = at::matmul(x, fc1[e].narrow(0, F, F).t());
    out += combine.select(1, e).unsqueeze(1) * at::matmul(at::silu(gate) * up, fc2[e].t());
  }
  return out;
}

TEST(MoE, DroplessDispatchMatchesEveryExpertOnEveryToken) {
  at::manual_seed(0);
  for (const char* score : {"softmax", "sigmoid"}) {
    for (bool normalize : {true, false}) {
      for (int64_t topk : {1, 2}) {
        SCOPED_TRACE(::testing::Message() << score << " normalize=" << normalize << " k=" << topk);
        auto config = moe_config(topk, score, normalize);
        auto moe = build_moe(config);
        auto x = at::randn({3, 11, config->hidden_size}, testing::test_device());
        ForwardContext ctx;
        auto out = moe->forward(x, ctx).output;
        auto expected = dense_reference(*moe, *config, x.reshape({-1, config->hidden_size})).view(x.sizes());
        EXPECT_TRUE(at::allclose(out, expected, 1e-5, 1e-5)) << (out - expected).abs().max();
      }
    }
  }
}

TEST(MoE, GradientsReachEveryParameter) {
  at::manual_seed(1);
  auto config = moe_config(2, "softmax", true);
  config->moe_shared_expert_intermediate_size = 24;
  config->moe_shared_expert_gate = true;
  config->moe_aux_loss_coeff = 0.01;
  auto moe = build_moe(config);
  EXPECT_EQ(moe->named_parameters().size(), 6u);

  ForwardContext ctx;
  auto out = moe->forward(at::randn({2, 32, config->hidden_size}, testing::test_device()), ctx).output;
  ASSERT_EQ(ctx.aux_losses.size(), 1u);
  (out.square().sum() + ctx.aux_losses[0]).backward();
  for (const auto& p : moe->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().norm().item<double>(), 0) << p.key();
  }
  // Every expert's slice of the grouped weights, too (no expert went unused).
  auto fc1_grad = moe->named_parameters()["experts.linear_fc1.weight"].grad();
  for (int64_t e = 0; e < config->num_moe_experts; ++e) EXPECT_GT(fc1_grad[e].norm().item<double>(), 0) << e;
}

// ---- Router --------------------------------------------------------------------------------

TEST(MoE, LoadBalancingLossMatchesHandComputation) {
  auto config = moe_config(2, "softmax", true);
  config->hidden_size = 4;  // router.weight = I makes the logits the input rows
  config->moe_aux_loss_coeff = 0.1;
  auto moe = build_moe(config);
  {
    at::NoGradGuard no_grad;
    moe->named_parameters()["router.weight"].copy_(at::eye(4));
  }
  const std::vector<std::vector<double>> logits{{2, 1, 0, -1}, {0, 3, 1, 0.5}, {1, 0, 0.2, 2}};
  // Top-2 per token: {0, 1}, {1, 2}, {3, 0}, so f = [2, 2, 1, 1] / (T * k = 6).
  const std::vector<double> f{2.0 / 6, 2.0 / 6, 1.0 / 6, 1.0 / 6};
  std::vector<double> P(4, 0.0);
  for (const auto& row : logits) {
    double z = 0;
    for (double l : row) z += std::exp(l);
    for (int e = 0; e < 4; ++e) P[e] += std::exp(row[e]) / z / 3.0;
  }
  double expected = 0;
  for (int e = 0; e < 4; ++e) expected += f[e] * P[e];
  expected *= 0.1 * 4;

  auto x = at::tensor({2., 1., 0., -1., 0., 3., 1., 0.5, 1., 0., 0.2, 2.}, at::kFloat).view({1, 3, 4});
  ForwardContext ctx;
  moe->forward(x.to(testing::test_device()), ctx);
  ASSERT_EQ(ctx.aux_losses.size(), 1u);
  EXPECT_NEAR(ctx.aux_losses[0].item<double>(), expected, 1e-7);

  // The loss trains the router through P_e.
  ctx.aux_losses[0].backward();
  EXPECT_GT(moe->named_parameters()["router.weight"].grad().norm().item<double>(), 0);
}

TEST(MoE, LoadBalancingLossOnlyWithCoefficientInTraining) {
  auto x = at::randn({2, 5, 32}, testing::test_device());
  auto config = moe_config(2, "softmax", true);
  ForwardContext ctx;
  build_moe(config)->forward(x, ctx);
  EXPECT_TRUE(ctx.aux_losses.empty());  // coeff 0

  config->moe_aux_loss_coeff = 0.01;
  auto moe = build_moe(config);
  moe->eval();
  moe->forward(x, ctx);
  EXPECT_TRUE(ctx.aux_losses.empty());  // evaluation
  moe->train();
  moe->forward(x, ctx);
  EXPECT_EQ(ctx.aux_losses.size(), 1u);
  {
    // Training without grad still reports it: the first run under activation recompute.
    at::NoGradGuard no_grad;
    moe->forward(x, ctx);
  }
  EXPECT_EQ(ctx.aux_losses.size(), 2u);
}

// ---- Load-balancing loss under activation recompute ------------------------------------------

// A language model with one MoE layer among attention and MLP layers, in training mode.
std::shared_ptr<LanguageModel> moe_language_model(double aux_loss_coeff) {
  auto config = moe_config(2, "softmax", true);
  config->hybrid_layer_pattern = "[*E][*-]";
  config->num_layers = 4;
  config->moe_shared_expert_intermediate_size = 24;
  config->moe_shared_expert_gate = true;
  config->moe_aux_loss_coeff = aux_loss_coeff;
  auto model =
      std::make_shared<LanguageModel>(config, decoder_spec(default_layer_registry(LocalBackend{}, *config), *config));
  model->to(testing::test_device());
  model->train();
  return model;
}

struct TrainingStep {
  double loss;                                 // cross-entropy plus the aux losses, as the trainer sums them
  size_t aux_losses;                           // how many the layers reported
  std::map<std::string, at::Tensor> gradients;  // canonical names
};

TrainingStep training_step(LanguageModel& model, const at::Tensor& tokens, bool recompute) {
  model.zero_grad();
  model.decoder().set_recompute(recompute);
  ForwardContext ctx;
  auto loss = causal_lm_loss(model.forward(tokens, ctx), tokens);
  for (const auto& aux : ctx.aux_losses) loss = loss + aux;
  loss.backward();
  TrainingStep step{loss.item<double>(), ctx.aux_losses.size(), {}};
  for (const auto& [name, p] : model.canonical_state_dict()) step.gradients.emplace(name, p.grad().clone());
  return step;
}

const std::string kRouter = "decoder.layers.1.mlp.router.weight";

TEST(MoE, RecomputeKeepsTheLoadBalancingLossAndItsGradient) {
  at::manual_seed(3);
  auto model = moe_language_model(0.1);
  auto tokens = at::randint(0, 64, {2, 12}, at::TensorOptions().dtype(at::kLong).device(testing::test_device()));
  const auto stored = training_step(*model, tokens, false);
  const auto recomputed = training_step(*model, tokens, true);
  EXPECT_EQ(stored.aux_losses, 1u);
  EXPECT_EQ(recomputed.aux_losses, 1u);
  EXPECT_NEAR(recomputed.loss, stored.loss, 1e-6);
  ASSERT_EQ(recomputed.gradients.size(), stored.gradients.size());
  for (const auto& [name, g] : stored.gradients)
    EXPECT_TRUE(at::allclose(recomputed.gradients.at(name), g, 1e-6, 1e-6))
        << name << ": " << (recomputed.gradients.at(name) - g).abs().max();

  // The router's gradient holds the aux loss's: without the loss (coefficient 0, same weights)
  // it differs by exactly d(aux loss)/d(router), taken here from the aux loss alone.
  auto without_aux = moe_language_model(0.0);
  without_aux->load_canonical_state_dict(model->canonical_state_dict(), "the coefficient-0.1 model");
  const auto plain = training_step(*without_aux, tokens, true);
  EXPECT_EQ(plain.aux_losses, 0u);
  model->zero_grad();
  model->decoder().set_recompute(false);
  ForwardContext ctx;
  model->forward(tokens, ctx);
  ASSERT_EQ(ctx.aux_losses.size(), 1u);
  ctx.aux_losses[0].backward();
  const auto aux_gradient = model->canonical_state_dict().at(kRouter).grad();
  const auto difference = recomputed.gradients.at(kRouter) - plain.gradients.at(kRouter);
  EXPECT_GT(aux_gradient.norm().item<double>(), 0.0);
  EXPECT_TRUE(at::allclose(difference, aux_gradient, 1e-5, 1e-6)) << (difference - aux_gradient).abs().max();
}

TEST(TopKRouter, ExpertBiasChangesSelectionButNotWeights) {
  at::manual_seed(2);
  auto config = moe_config(2, "sigmoid", false);
  config->moe_router_enable_expert_bias = true;
  TopKRouter router(*config);
  router.to(testing::test_device());
  EXPECT_EQ(router.named_buffers().size(), 1u);
  auto x = at::randn({64, config->hidden_size}, testing::test_device());
  auto unbiased = router.forward(x);
  {
    at::NoGradGuard no_grad;
    router.named_buffers()["expert_bias"].copy_(at::tensor({0.f, 0.f, 0.f, 10.f}));
  }
  auto biased = router.forward(x);

  EXPECT_TRUE((biased.indices == 3).any(1).all().item<bool>());  // the bias pulls every token to expert 3
  EXPECT_FALSE(at::equal(biased.indices, unbiased.indices));
  auto scores = at::sigmoid(at::matmul(x, router.named_parameters()["weight"].t()));
  EXPECT_TRUE(at::allclose(biased.weights, scores.gather(1, biased.indices), 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(biased.probs, unbiased.probs));
}

TEST(TopKRouter, SqrtSoftplusScoresAreRenormalisedAndScaled) {
  at::manual_seed(4);
  auto config = moe_config(2, "sqrtsoftplus", true);
  config->moe_router_topk_scaling_factor = 1.5;
  TopKRouter router(*config);
  auto x = at::randn({16, config->hidden_size}, at::kDouble);
  auto routing = router.forward(x.to(at::kFloat));
  // DeepSeek-V4: score_e = sqrt(softplus(x . w_e)); the top 2 scores, over their sum, times 1.5.
  auto scores = at::sqrt(at::softplus(at::matmul(x, router.named_parameters()["weight"].to(at::kDouble).t())));
  auto top = at::topk(scores, 2, -1);
  EXPECT_TRUE(at::equal(std::get<0>(std::get<1>(top).sort(-1)), std::get<0>(routing.indices.sort(-1))));
  auto expected = scores.gather(1, routing.indices);
  expected = expected / expected.sum(-1, true) * 1.5;
  EXPECT_TRUE(at::allclose(routing.weights.to(at::kDouble), expected, 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(routing.probs.sum(-1), at::ones({16}), 1e-6, 1e-6));
}

TEST(Mlp, ClampedSwiGluClampsTheGateAboveAndUpOnBothSides) {
  auto gate_up = at::tensor({20.0, -20.0, 3.0, 20.0, -20.0, -3.0}, at::kDouble).view({1, 6});
  auto out = gated_activation(gate_up, Activation::SiLU, 10.0);
  // gates (20, -20, 3) -> (10, -20, 3); ups (20, -20, -3) -> (10, -10, -3).
  auto expected = at::silu(at::tensor({10.0, -20.0, 3.0}, at::kDouble)) * at::tensor({10.0, -10.0, -3.0}, at::kDouble);
  EXPECT_TRUE(at::allclose(out, expected.view({1, 3}), 1e-12, 1e-12));
}

// ---- Config errors -------------------------------------------------------------------------

TEST(MoE, BadConfigValuesAreNamed) {
  auto config = moe_config(5, "softmax", true);
  EXPECT_NE(error_of(config).find("moe_router_topk = 5: must be between 1 and num_moe_experts = 4"), std::string::npos);
  config = moe_config(2, "sparsemax", true);
  EXPECT_NE(error_of(config).find("moe_router_score_function: 'sparsemax' is not a score function; valid values: "
                                  "softmax, sigmoid"),
            std::string::npos);
  config = moe_config(2, "softmax", true);
  config->moe_shared_expert_gate = true;
  EXPECT_NE(error_of(config).find("moe_shared_expert_gate = true, but this MoE has no shared expert"),
            std::string::npos);
  config = moe_config(2, "softmax", true);
  config->moe_ffn_hidden_size = 0;
  EXPECT_NE(error_of(config).find("moe_ffn_hidden_size = 0"), std::string::npos);
  config = moe_config(2, "softmax", true);
  config->num_moe_experts = 0;
  EXPECT_NE(error_of(config).find("num_moe_experts = 0"), std::string::npos);
}

}  // namespace
}  // namespace strata
