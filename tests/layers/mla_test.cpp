// Multi-head latent attention against MLA written out head by head, decoding against the full
// sequence, and the 'A' pattern symbol building it from typed specs.
#include "strata/layers/mla.h"

#include <gtest/gtest.h>

#include <cmath>

#include "strata/backends/local_backend.h"
#include "strata/model/language_model.h"
#include "strata/model/layer_specs.h"
#include "test_util.h"

namespace strata {
namespace {

std::shared_ptr<TransformerConfig> mla_config() {
  auto c = testing::small_config();  // hidden 32, 4 heads
  c->q_lora_rank = 12;
  c->kv_lora_rank = 10;
  c->qk_head_dim = 6;
  c->qk_pos_emb_head_dim = 4;
  c->v_head_dim = 5;
  return c;
}

std::shared_ptr<SequenceMixer> build_mla(std::shared_ptr<TransformerConfig> config) {
  auto mla = MultiLatentAttention::builder(mla_submodules(LocalBackend{}))(LayerArgs{.config = config, .layer_number = 1});
  at::NoGradGuard no_grad;
  for (auto& p : mla->named_parameters())
    if (p.key().find("layernorm") != std::string::npos) p.value().normal_(1.0, 0.1);
  return mla;
}

at::Tensor rms(const at::Tensor& x, const at::Tensor& w, double eps) {
  return x * at::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

TEST(MultiLatentAttention, MatchesHeadByHeadLatentAttention) {
  auto config = mla_config();
  auto mla = build_mla(config);
  auto p = mla->named_parameters();
  const int64_t B = 2, T = 7, heads = 4, dn = 6, dr = 4, dv = 5;
  const double eps = config->layernorm_epsilon;
  auto x = at::randn({B, T, config->hidden_size});
  ForwardContext ctx;
  auto out = mla->forward(x, ctx).output;

  RotaryEmbedding rope(dr, config->rotary_base);
  auto [cos, sin] = rope.tables(T, 0, at::kCPU);
  auto q_latent = rms(at::matmul(x, p["linear_q_down_proj.weight"].t()), p["q_layernorm.weight"], eps);
  auto q = at::matmul(q_latent, p["linear_q_up_proj.weight"].t()).view({B, T, heads, dn + dr});
  auto kv_down = at::matmul(x, p["linear_kv_down_proj.weight"].t());
  auto kv_latent = rms(kv_down.narrow(-1, 0, 10), p["kv_layernorm.weight"], eps);
  auto k_pos = apply_rotary(kv_down.narrow(-1, 10, dr).unsqueeze(2), cos, sin).squeeze(2);  // shared by all heads
  auto kv = at::matmul(kv_latent, p["linear_kv_up_proj.weight"].t()).view({B, T, heads, dn + dv});
  auto causal = at::ones({T, T}).triu(1).to(at::kBool);
  auto expected = at::zeros({B, T, config->hidden_size});
  for (int64_t h = 0; h < heads; ++h) {
    auto qh = q.select(2, h);
    auto q_pos = apply_rotary(qh.narrow(-1, dn, dr).unsqueeze(2), cos, sin).squeeze(2);
    auto scores = (at::matmul(qh.narrow(-1, 0, dn), kv.select(2, h).narrow(-1, 0, dn).transpose(1, 2)) +
                   at::matmul(q_pos, k_pos.transpose(1, 2))) /
                  std::sqrt(static_cast<double>(dn + dr));
    auto head_out = at::matmul(at::softmax(scores.masked_fill(causal, -INFINITY), -1), kv.select(2, h).narrow(-1, dn, dv));
    expected += at::matmul(head_out, p["linear_proj.weight"].narrow(1, h * dv, dv).t());
  }
  EXPECT_TRUE(at::allclose(out, expected, 1e-5, 1e-5)) << (out - expected).abs().max();
}

TEST(MultiLatentAttention, ParametersHaveMegatronNamesAndShapes) {
  auto config = mla_config();
  auto params = build_mla(config)->named_parameters();
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"linear_q_down_proj.weight", {12, 32}}, {"q_layernorm.weight", {12}},
      {"linear_q_up_proj.weight", {4 * 10, 12}}, {"linear_kv_down_proj.weight", {10 + 4, 32}},
      {"kv_layernorm.weight", {10}}, {"linear_kv_up_proj.weight", {4 * (6 + 5), 10}},
      {"linear_proj.weight", {32, 4 * 5}}};
  EXPECT_EQ(params.size(), expected.size());
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(params.contains(name)) << name;
    EXPECT_EQ(params[name].sizes(), at::IntArrayRef(shape)) << name;
  }

  config->q_lora_rank = 0;  // no query latent: one projection from the input
  auto direct = build_mla(config)->named_parameters();
  EXPECT_FALSE(direct.contains("linear_q_down_proj.weight"));
  ASSERT_TRUE(direct.contains("linear_q_proj.weight"));
  EXPECT_EQ(direct["linear_q_proj.weight"].sizes(), at::IntArrayRef({4 * 10, 32}));
}

TEST(MultiLatentAttention, DecodingFromTheLatentCacheMatchesTheFullSequence) {
  auto config = mla_config();
  auto mla = build_mla(config);
  const int64_t B = 2, T = 9, prefill = 5;
  auto x = at::randn({B, T, config->hidden_size});
  ForwardContext full_ctx;
  auto full = mla->forward(x, full_ctx).output;

  InferenceCache cache;
  std::vector<at::Tensor> steps;
  for (int64_t start = 0; start < T;) {
    const int64_t len = start == 0 ? prefill : 1;
    ForwardContext ctx{.cache = &cache};
    steps.push_back(mla->forward(x.narrow(1, start, len), ctx).output);
    cache.advance(len);
    start += len;
  }
  auto decoded = at::cat(steps, 1);
  EXPECT_TRUE(at::allclose(decoded, full, 1e-5, 1e-5)) << (decoded - full).abs().max();
  // The cache holds the latents, not per-head keys and values.
  auto& state = cache.state<LatentAttentionState>(1);
  EXPECT_EQ(state.kv_latent.sizes(), at::IntArrayRef({B, T, 10}));
  EXPECT_EQ(state.k_pos_emb.sizes(), at::IntArrayRef({B, T, 4}));
}

TEST(MultiLatentAttention, PatternSymbolABuildsItAndEveryParameterLearns) {
  auto config = mla_config();
  config->hybrid_layer_pattern = "A-A-";
  config->num_layers = 4;
  auto model = std::make_shared<LanguageModel>(config, decoder_spec(default_layer_registry(LocalBackend{}, *config), *config));
  auto ids = at::randint(config->vocab_size, {2, 6});
  model->forward(ids).pow(2).mean().backward();
  int64_t mla_params = 0;
  for (const auto& [name, tensor] : model->canonical_state_dict()) {
    EXPECT_TRUE(tensor.grad().defined()) << name;
    mla_params += name.find("self_attention.linear_kv_up_proj") != std::string::npos;
  }
  EXPECT_EQ(mla_params, 2);  // decoder.layers.0 and decoder.layers.2
}

}  // namespace
}  // namespace strata
