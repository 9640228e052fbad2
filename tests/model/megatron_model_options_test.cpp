// The model options strata took from Megatron: learned absolute and no position embeddings,
// attention dropout (replayed exactly under recompute), and full recompute's uniform and block
// methods.
#include <gtest/gtest.h>

#include "strata/model/build_model.h"
#include "strata/model/layer_pattern.h"
#include "test_util.h"

namespace strata {
namespace {

std::shared_ptr<TransformerConfig> config_with(const std::string& pattern) {
  auto c = testing::small_config();
  c->hybrid_layer_pattern = pattern;
  c->num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  return c;
}

at::Tensor tokens(int64_t length) {
  at::manual_seed(3);
  return at::randint(0, 64, {2, length});
}

TEST(PositionEmbedding, LearnedAbsoluteAddsATableRowPerPosition) {
  auto c = config_with("*-");
  c->position_embedding_type = PositionEmbeddingType::LearnedAbsolute;
  c->max_position_embeddings = 16;
  at::manual_seed(1);
  auto model = build_language_model(c);
  model->eval();
  const auto weights = model->canonical_state_dict();
  ASSERT_TRUE(weights.count("embedding.position_embeddings.weight"));
  EXPECT_EQ(weights.at("embedding.position_embeddings.weight").sizes(), (at::IntArrayRef{16, 32}));
  const auto ids = tokens(8);
  const auto before = model->forward(ids);
  {  // the table is read: changing the row of position 3 changes the logits from position 3 on
    at::NoGradGuard no_grad;
    weights.at("embedding.position_embeddings.weight")[3].add_(1.0);
  }
  const auto after = model->forward(ids);
  EXPECT_TRUE(at::equal(before.slice(1, 0, 3), after.slice(1, 0, 3)));
  EXPECT_FALSE(at::allclose(before.slice(1, 3), after.slice(1, 3)));
  EXPECT_EQ(testing::error_of([&] { model->forward(tokens(17)); }),
            "position 16 is past the learned position table: max_position_embeddings = 16");
}

TEST(PositionEmbedding, NoneRotatesNothing) {
  auto rope = config_with("*-");
  auto none = config_with("*-");
  none->position_embedding_type = PositionEmbeddingType::None;
  auto rope_less = config_with("*-");
  rope_less->rotary_percent = 0.0;  // how a NoPE model was written before the field existed
  at::manual_seed(1);
  auto a = build_language_model(none);
  at::manual_seed(1);
  auto b = build_language_model(rope_less);
  at::manual_seed(1);
  auto c = build_language_model(rope);
  const auto ids = tokens(8);
  EXPECT_TRUE(at::equal(a->forward(ids), b->forward(ids)));
  EXPECT_FALSE(at::allclose(a->forward(ids), c->forward(ids)));
  EXPECT_FALSE(a->canonical_state_dict().count("embedding.position_embeddings.weight"));
}

std::map<std::string, at::Tensor> gradients(LanguageModel& model, const at::Tensor& ids, uint64_t seed,
                                            at::Tensor* logits = nullptr) {
  model.zero_grad();
  at::manual_seed(seed);
  ForwardContext ctx;
  auto out = model.forward(ids, ctx);
  out.square().mean().backward();
  if (logits) *logits = out.detach();
  std::map<std::string, at::Tensor> grads;
  for (const auto& [name, p] : model.canonical_state_dict()) grads.emplace(name, p.grad().clone());
  return grads;
}

TEST(AttentionDropout, DropsWhileTrainingAndReplaysUnderRecompute) {
  auto c = config_with("*-*-");
  c->attention_dropout = 0.5;
  at::manual_seed(1);
  auto model = build_language_model(c);
  const auto ids = tokens(8);
  model->eval();
  const auto eval_once = model->forward(ids), eval_again = model->forward(ids);
  EXPECT_TRUE(at::equal(eval_once, eval_again));  // no dropout outside training
  model->train();
  at::Tensor first, second, recomputed_logits;
  const auto plain = gradients(*model, ids, 7, &first);
  gradients(*model, ids, 8, &second);
  EXPECT_FALSE(at::allclose(first, second));  // another seed, other masks
  EXPECT_FALSE(at::allclose(first, eval_once));
  model->decoder().set_recompute(true);
  const auto recomputed = gradients(*model, ids, 7, &recomputed_logits);
  EXPECT_TRUE(at::equal(first, recomputed_logits));
  for (const auto& [name, g] : plain) EXPECT_TRUE(at::equal(g, recomputed.at(name))) << name;
}

TEST(FullRecompute, UniformAndBlockMethodsChangeNoBitAndKeepLess) {
  const auto ids = tokens(16);
  struct Run {
    at::Tensor logits;
    std::map<std::string, at::Tensor> grads;
    int64_t saved_bytes;
  };
  auto run = [&](const std::string& method, int64_t layers) {
    auto c = config_with("*-*-*-*-");
    c->recompute_granularity = method.empty() ? "" : "full";
    c->recompute_method = method == "each" ? "" : method;
    c->recompute_num_layers = layers;
    at::manual_seed(1);
    auto model = build_language_model(c);
    Run r;
    r.saved_bytes = testing::bytes_saved_for_backward([&] { return std::vector{model->forward(ids)}; });
    r.grads = gradients(*model, ids, 0, &r.logits);
    return r;
  };
  const auto off = run("", 0), each = run("each", 0), uniform = run("uniform", 4), block = run("block", 2);
  for (const auto* r : {&each, &uniform, &block}) {
    EXPECT_TRUE(at::equal(off.logits, r->logits));
    for (const auto& [name, g] : off.grads) EXPECT_TRUE(at::equal(g, r->grads.at(name))) << name;
    EXPECT_LT(r->saved_bytes, off.saved_bytes);
  }
  // Two groups of four layers keep two inputs; each layer alone keeps eight; the first two of
  // eight layers alone keep the other six layers' activations.
  EXPECT_LT(uniform.saved_bytes, each.saved_bytes);
  EXPECT_GT(block.saved_bytes, each.saved_bytes);
}

}  // namespace
}  // namespace strata
