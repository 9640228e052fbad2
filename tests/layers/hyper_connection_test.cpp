// Manifold-constrained hyper-connections: the Sinkhorn-Knopp projection and its memory-light
// backward, the n = 1 identity point against PlainResidual, layer 0 of HF DeepSeek-V4, and
// recompute on vs off.
#include "strata/layers/hyper_connection.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "strata/core/error.h"
#include "strata/io/safetensors.h"
#include "strata/layers/bias_dropout_add.h"
#include "strata/layers/residual.h"
#include "strata/layers/rotary.h"
#include "strata/layers/sinkhorn.h"
#include "strata/model/layer_specs.h"
#include "strata/model/transformer_layer.h"
#include "test_util.h"

namespace strata {
namespace {

// max |actual - expected| / max |expected|; the absolute error where expected is all zeros.
double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  const double error = (actual - expected).abs().max().item<double>();
  const double scale = expected.abs().max().item<double>();
  return scale > 0.0 ? error / scale : error;
}

// ---- Sinkhorn-Knopp ----

double max_deviation_from_one(const at::Tensor& sums) { return (sums - 1).abs().max().item<double>(); }

TEST(SinkhornKnopp, RowsAndColumnsSumToOne) {
  // For logits of the maps' spread (gated by small factors; std 0.5 here), DeepSeek-V4's 20
  // iterations converge to 1e-5 at every n. Seeded: a rare draw of far-apart logits converges slower.
  at::manual_seed(0);
  for (int64_t n : {1, 2, 4, 8}) {
    auto m = sinkhorn_knopp(at::randn({1024, n, n}) * 0.5, 20, 1e-6);
    EXPECT_LT(max_deviation_from_one(m.sum(-1)), 1e-5) << "rows, n = " << n;
    EXPECT_LT(max_deviation_from_one(m.sum(-2)), 1e-5) << "columns, n = " << n;
    EXPECT_GT(m.min().item<double>(), 0.0) << "n = " << n;
  }
}

TEST(SinkhornKnopp, WiderLogitsNeedMoreIterations) {
  at::manual_seed(0);
  auto wide = at::randn({1024, 4, 4}) * 2;
  const auto deviation = [&](int64_t iters) {
    auto m = sinkhorn_knopp(wide, iters, 1e-6);
    return std::max(max_deviation_from_one(m.sum(-1)), max_deviation_from_one(m.sum(-2)));
  };
  EXPECT_GT(deviation(20), 1e-5);
  EXPECT_LT(deviation(200), deviation(20) / 10);
}

TEST(SinkhornKnopp, CustomBackwardEqualsAutogradThroughTheIterations) {
  for (int64_t n : {1, 2, 4, 7}) {
    for (int64_t iters : {1, 2, 5, 20}) {
      auto logits = at::randn({3, 2, n, n}, at::kDouble) * 2;
      auto probe = at::randn({3, 2, n, n}, at::kDouble);  // the random scalar function: <probe, M>
      auto custom_in = logits.clone().requires_grad_(true), unrolled_in = logits.clone().requires_grad_(true);
      auto custom = sinkhorn_knopp(custom_in, iters, 1e-6);
      auto unrolled = sinkhorn_knopp_unrolled(unrolled_in, iters, 1e-6);
      (custom * probe).sum().backward();
      (unrolled * probe).sum().backward();
      EXPECT_TRUE(at::equal(custom, unrolled)) << "n = " << n << ", iters = " << iters;
      EXPECT_LE(relative_error(custom_in.grad(), unrolled_in.grad()), 1e-8) << "n = " << n << ", iters = " << iters;
    }
  }
}

TEST(SinkhornKnopp, KeepsOnlyItsInputForBackward) {
  auto logits = at::randn({64, 4, 4}).requires_grad_(true);
  for (int64_t iters : {1, 20, 50}) {
    EXPECT_EQ(testing::bytes_saved_for_backward([&] { return std::vector{sinkhorn_knopp(logits, iters, 1e-6)}; }), 0)
        << "iters = " << iters;
  }
  const auto unrolled = [&](int64_t iters) {
    return testing::bytes_saved_for_backward([&] { return std::vector{sinkhorn_knopp_unrolled(logits, iters, 1e-6)}; });
  };
  EXPECT_GT(unrolled(20), unrolled(1));  // the reference stores every iteration
}

TEST(SinkhornKnopp, RejectsBadArguments) {
  auto expect_error = [](const std::function<void()>& call, const std::string& message) {
    try {
      call();
      ADD_FAILURE() << "accepted; expected: " << message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  expect_error([] { sinkhorn_knopp(at::zeros({2, 3, 4}), 5, 1e-6); }, "logits of shape [2, 3, 4], expected [..., n, n]");
  expect_error([] { sinkhorn_knopp(at::zeros({4, 4}), 0, 1e-6); }, "iters is 0, expected >= 1");
  expect_error([] { sinkhorn_knopp(at::zeros({4, 4}), 3, -1.0); }, "eps is -1");
}

// ---- The n = 1 identity point ----

// fn = 0 makes every map constant; base_pre = 40 rounds sigmoid to exactly 1 (pre = 1 with
// eps = 0), base_post = 0 gives post = 2 sigmoid(0) = 1, and a 1 x 1 softmax is exactly [[1]].
void set_identity_point(torch::nn::Module& hyper_connection) {
  at::NoGradGuard no_grad;
  auto params = hyper_connection.named_parameters();
  params["fn"].zero_();
  params["base"].copy_(at::tensor({40.0, 0.0, 0.0}));
}

TEST(HyperConnection, OneStreamAtTheIdentityPointIsThePlainResidual) {
  auto config = testing::small_config();
  config->hidden_dropout = 0.1;  // dropout masks must match too: both draw the same [B, T, H] mask
  LayerArgs args{.config = config, .layer_number = 1};
  auto plain_spec = gpt_layer_spec(LocalBackend{}, true);
  auto mhc_spec = plain_spec;
  mhc_spec.residual = hyper_connection({.num_residual_streams = 1, .eps = 0.0});
  auto plain = std::make_shared<TransformerLayer>(plain_spec, args);
  auto mhc = std::make_shared<TransformerLayer>(mhc_spec, args);
  {
    at::NoGradGuard no_grad;
    auto mhc_params = mhc->named_parameters();
    for (const auto& p : plain->named_parameters()) mhc_params[p.key()].copy_(p.value());
  }
  set_identity_point(*mhc->named_children()["self_attn_residual"]);
  set_identity_point(*mhc->named_children()["mlp_residual"]);

  const int64_t B = 2, T = 6, H = config->hidden_size;
  auto hidden = at::randn({B, T, H});
  RotaryEmbedding rope(config->rotary_dim(), config->rotary_base);
  auto [cos, sin] = rope.tables(T, 0, at::kCPU);
  ForwardContext ctx{.rotary_cos = cos, .rotary_sin = sin};
  at::manual_seed(7);
  auto expected = plain->forward(hidden, ctx);
  at::manual_seed(7);
  auto streams = mhc->forward(expand_streams(hidden, 1), ctx);
  ASSERT_EQ(streams.sizes(), (std::vector<int64_t>{B, T, 1, H}));
  EXPECT_TRUE(at::equal(streams.squeeze(2), expected)) << (streams.squeeze(2) - expected).abs().max();
}

TEST(HyperConnection, OneStreamIdentityCombinesBiasLikeThePlainResidual) {
  auto config = testing::small_config();
  LayerArgs args{.config = config};
  HyperConnection mhc(args, {.num_residual_streams = 1, .eps = 0.0});
  set_identity_point(mhc);
  PlainResidual plain(args);
  BiasDropoutAdd bda(args);
  auto hidden = at::randn({2, 3, config->hidden_size});
  MixerOutput out{at::randn({2, 3, config->hidden_size}), at::randn({config->hidden_size})};
  auto streams = expand_streams(hidden, 1);
  EXPECT_TRUE(at::equal(mhc.sublayer_input(streams), plain.sublayer_input(hidden)));
  EXPECT_TRUE(at::equal(mhc.combine(streams, out, bda).squeeze(2), plain.combine(hidden, out, bda)));
}

// ---- HF DeepSeek-V4 ----

// The fixture's layer 0, on the test device (so the GPU machine checks the mHC CUDA kernels against
// HF too). HF's DeepseekV4HyperConnection.forward returns (post, comb, collapsed),
// so the capture's `attn_hc.out0` / `ffn_hc.out0` [2, 100, 4] hold `post` (checked below against
// `pre`, which has the same shape). res (comb) is not captured: its properties are tested instead.
// The collapsed input and the new streams are captured elsewhere: as the input of the half's norm
// (input_layernorm / post_attention_layernorm) and as the next half's input (ffn_hc.in0) or the
// layer's output.
class DeepseekV4Layer0 : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream file(testing::fixture("deepseek_v4") + "/model/config.json");
    const auto c = nlohmann::json::parse(file);
    config_ = std::make_shared<TransformerConfig>();
    use_llama_style(*config_);  // no dropout, as HF's model
    config_->hidden_size = c["hidden_size"];
    config_->layernorm_epsilon = c["rms_norm_eps"];
    options_ = {.num_residual_streams = c["hc_mult"], .sinkhorn_iterations = c["hc_sinkhorn_iters"], .eps = c["hc_eps"]};
  }

  // HF's attn_hc / ffn_hc, stored in the checkpoint as hc_attn_* / hc_ffn_*.
  std::shared_ptr<HyperConnection> site(const std::string& name) {
    auto hc = std::make_shared<HyperConnection>(LayerArgs{.config = config_}, options_);
    at::NoGradGuard no_grad;
    for (auto& p : hc->named_parameters()) p.value().copy_(checkpoint_.load("model.layers.0.hc_" + name + "_" + p.key()));
    hc->to(testing::test_device());
    return hc;
  }
  at::Tensor ref(const std::string& name) const { return reference_.load(name).to(testing::test_device()); }

  void expect_documented_ranges(const HyperConnectionMaps& maps) const {
    const double eps = options_.eps;
    EXPECT_GE(maps.pre.min().item<double>(), eps);
    EXPECT_LE(maps.pre.max().item<double>(), 1.0 + eps);
    EXPECT_GE(maps.post.min().item<double>(), 0.0);
    EXPECT_LE(maps.post.max().item<double>(), 2.0);
    EXPECT_GT(maps.res.min().item<double>(), 0.0);
    EXPECT_LT((maps.res.sum(-1) - 1).abs().max().item<double>(), 1e-5) << "rows";
    EXPECT_LT((maps.res.sum(-2) - 1).abs().max().item<double>(), 1e-5) << "columns";
  }

  std::shared_ptr<TransformerConfig> config_;
  HyperConnectionOptions options_;
  io::SafetensorsFile checkpoint_ = io::SafetensorsFile::open(testing::fixture("deepseek_v4") + "/model/model.safetensors");
  io::SafetensorsFile reference_ = io::SafetensorsFile::open(testing::fixture("deepseek_v4") + "/reference.safetensors");
};

TEST_F(DeepseekV4Layer0, StreamsStartAsCopiesOfTheEmbedding) {
  auto embedded = at::embedding(checkpoint_.load("model.embed_tokens.weight").to(testing::test_device()), ref("input_ids"));
  EXPECT_TRUE(at::equal(expand_streams(embedded, options_.num_residual_streams), ref("capture.model.layers.0.in0")));
}

TEST_F(DeepseekV4Layer0, NormalisesTheFlattenedStreamsWithEpsInsideTheRoot) {
  // The convention HyperConnection's maps use (see hyper_connection.h), checked on HF's input_norm.
  auto flat = ref("capture.model.layers.0.attn_hc.input_norm.in0");
  EXPECT_TRUE(at::equal(flat, ref("capture.model.layers.0.attn_hc.in0").flatten(2)));
  auto normed = flat * at::rsqrt(flat.square().mean(-1, true) + config_->layernorm_epsilon);
  EXPECT_LE(relative_error(normed, ref("capture.model.layers.0.attn_hc.input_norm.out0")), 1e-6);
}

TEST_F(DeepseekV4Layer0, ReproducesBothHalves) {
  BiasDropoutAdd bda(LayerArgs{.config = config_});
  struct Half {
    std::string site, norm, mixer, next;
  };
  for (const Half& half : {Half{"attn", "input_layernorm", "self_attn", "ffn_hc.in0"},
                           Half{"ffn", "post_attention_layernorm", "mlp", "out0"}}) {
    SCOPED_TRACE(half.site);
    auto hc = site(half.site);
    const auto prefix = "capture.model.layers.0.";
    auto streams = ref(prefix + half.site + "_hc.in0");

    auto maps = hc->maps(streams);
    const auto captured = ref(prefix + half.site + "_hc.out0");
    EXPECT_LE(relative_error(maps.post, captured), 1e-5);
    EXPECT_GT(relative_error(maps.pre, captured), 0.1) << "the capture should not match pre";
    expect_documented_ranges(maps);

    EXPECT_LE(relative_error(hc->sublayer_input(streams), ref(prefix + half.norm + ".in0")), 1e-5);
    auto next = hc->combine(streams, {ref(prefix + half.mixer + ".out0"), std::nullopt}, bda);
    EXPECT_LE(relative_error(next, ref(prefix + half.next)), 1e-5);
  }
}

TEST(HyperConnectionHead, OneStreamAtTheIdentityPointPassesTheStreamThrough) {
  auto config = testing::small_config();
  HyperConnectionHead head(*config, {.num_residual_streams = 1, .eps = 0.0});
  {
    at::NoGradGuard no_grad;
    auto params = head.named_parameters();
    params["hc_fn"].zero_();
    params["hc_base"].fill_(40.0);
  }
  auto hidden = at::randn({2, 3, config->hidden_size});
  EXPECT_TRUE(at::equal(head.forward(expand_streams(hidden, 1)), hidden));
}

TEST_F(DeepseekV4Layer0, HeadContractsWithSigmoidWeights) {
  // The fixture captures no input of hc_head (layer 2's output is not recorded), so its
  // weights run on layer 0's output against the formula in hyper_connection.h.
  HyperConnectionHead head(*config_, options_);
  {
    at::NoGradGuard no_grad;
    for (auto& p : head.named_parameters()) p.value().copy_(checkpoint_.load("model.hc_head." + p.key()));
  }
  head.to(testing::test_device());
  auto weight = [&](const std::string& name) { return checkpoint_.load("model.hc_head." + name).to(testing::test_device()); };
  auto streams = ref("capture.model.layers.0.out0");
  auto flat = streams.flatten(2);
  auto f = at::linear(flat * at::rsqrt(flat.square().mean(-1, true) + config_->layernorm_epsilon), weight("hc_fn"));
  auto pre = at::sigmoid(f * weight("hc_scale") + weight("hc_base")) + options_.eps;
  auto expected = (pre.unsqueeze(-1) * streams).sum(2);
  EXPECT_LE(relative_error(head.forward(streams), expected), 1e-6);
}

// ---- Recompute ----

// Two halves (each its own HyperConnection) around stand-in mixers, as TransformerLayer runs them.
struct TwoHalves {
  TwoHalves(const LayerArgs& args, HyperConnectionOptions options)
      : first(std::make_shared<HyperConnection>(args, options)),
        second(std::make_shared<HyperConnection>(args, options)),
        bda(args) {}

  at::Tensor forward(const at::Tensor& streams, const at::Tensor& w, const at::Tensor& bias) {
    auto h = first->combine(streams, {at::tanh(at::matmul(first->sublayer_input(streams), w)), bias}, bda);
    return second->combine(h, {at::tanh(at::matmul(second->sublayer_input(h), w)), bias}, bda);
  }

  std::vector<at::Tensor> parameters() const {
    auto a = first->parameters(), b = second->parameters();
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  std::shared_ptr<HyperConnection> first, second;
  BiasDropoutAdd bda;
};

TEST(HyperConnection, RecomputeIsBitwiseEqualAndSavesFewerBytes) {
  auto config = testing::small_config();
  LayerArgs args{.config = config};
  HyperConnectionOptions options{.num_residual_streams = 4, .init_gating_factor = 1.0};
  TwoHalves stored(args, options);
  options.recompute = true;
  TwoHalves recomputed(args, options);
  {
    at::NoGradGuard no_grad;
    auto from = stored.parameters(), to = recomputed.parameters();
    for (size_t i = 0; i < from.size(); ++i) {
      if (from[i].dim() == 1) from[i].normal_(0.0, 1.0);  // base and scale off their symmetric init
      to[i].copy_(from[i]);
    }
  }
  const int64_t H = config->hidden_size;
  auto streams = at::randn({2, 6, 4, H});
  auto w = at::randn({H, H}) / std::sqrt(static_cast<double>(H));
  auto bias = at::randn({H});
  auto probe = at::randn({2, 6, 4, H});

  struct Run {
    at::Tensor output;
    std::vector<at::Tensor> grads;
  };
  auto run = [&](TwoHalves& halves) {
    auto x = streams.clone().requires_grad_(true), wx = w.clone().requires_grad_(true);
    auto output = halves.forward(x, wx, bias);
    (output * probe).sum().backward();
    Run r{output.detach(), {x.grad(), wx.grad()}};
    for (const auto& p : halves.parameters()) r.grads.push_back(p.grad());
    return r;
  };
  const auto a = run(stored), b = run(recomputed);
  EXPECT_TRUE(at::equal(a.output, b.output));
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) EXPECT_TRUE(at::equal(a.grads[i], b.grads[i])) << "gradient " << i;

  auto saved = [&](TwoHalves& halves) {
    auto x = streams.clone().requires_grad_(true);
    return testing::bytes_saved_for_backward([&] { return std::vector{halves.forward(x, w, bias)}; });
  };
  const int64_t saved_stored = saved(stored), saved_recomputed = saved(recomputed);
  EXPECT_LT(saved_recomputed, saved_stored);
  std::cout << "bytes saved for backward: recompute off " << saved_stored << ", on " << saved_recomputed << "\n";
}

// ---- Errors ----

TEST(HyperConnection, ErrorsNameTheBadValue) {
  auto config = testing::small_config();
  auto expect_error = [](const std::function<void()>& call, const std::string& message) {
    try {
      call();
      ADD_FAILURE() << "accepted; expected: " << message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  LayerArgs args{.config = config, .layer_number = 3};
  expect_error([&] { std::make_shared<HyperConnection>(args, HyperConnectionOptions{.num_residual_streams = 0}); },
               "num_residual_streams is 0, expected >= 1");
  expect_error([&] { std::make_shared<HyperConnection>(args, HyperConnectionOptions{.sinkhorn_iterations = -2}); },
               "sinkhorn_iterations is -2");
  HyperConnection hc(args, {});
  expect_error([&] { hc.sublayer_input(at::zeros({2, 5, 3, 32})); },
               "hyper-connection (layer 3): streams of shape [2, 5, 3, 32], expected [B, T, 4, 32]");
  BiasDropoutAdd bda(args);
  expect_error([&] { hc.combine(at::zeros({2, 5, 4, 32}), {at::zeros({2, 5, 32})}, bda); },
               "no maps cached; sublayer_input() must run first");
  expect_error([] { expand_streams(at::zeros({2, 32}), 4); }, "hidden of shape [2, 32], expected [B, T, H]");
}

}  // namespace
}  // namespace strata
