// mHC at the model level: chosen from the config for any pattern, stable canonical names shared by
// fused and unfused models, the n = 1 identity point against the plain model, expand and contract
// across pipeline stages, fused half boundaries against the unfused ops, recompute of the maps
// (selective "mhc"), and training steps.
#include <gtest/gtest.h>
#include <torch/csrc/autograd/function.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>

#include "strata/core/compat.h"
#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/layers/rotary.h"
#include "strata/model/checkpoint.h"
#include "strata/model/layer_allocation.h"
#include "strata/model/layer_specs.h"
#include "strata/model/loss.h"
#include "test_util.h"

namespace strata {
namespace {

std::shared_ptr<TransformerConfig> mhc_config(const std::string& pattern, int64_t streams = 4) {
  auto config = testing::small_config();
  config->hybrid_layer_pattern = pattern;
  config->num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  config->enable_mhc_connections = true;
  config->mhc_num_residual_streams = streams;
  config->mhc_init_gating_factor = 1.0;  // maps that depend on the streams, so their gradients are not tiny
  // Sizes for the patterns with Mamba2 (M), Gated DeltaNet (G) and MoE (E) layers.
  testing::use_small_hybrid_mixers(*config);
  config->num_moe_experts = 4;
  config->moe_ffn_hidden_size = 16;
  config->moe_aux_loss_coeff = 0.01;
  return config;
}

std::shared_ptr<LanguageModel> build(std::shared_ptr<const TransformerConfig> config, uint64_t seed) {
  at::manual_seed(seed);
  return std::make_shared<LanguageModel>(config, decoder_spec(default_layer_registry(LocalBackend{}, *config), *config));
}

std::set<std::string> names_of(const std::map<std::string, at::Tensor>& tensors) {
  std::set<std::string> names;
  for (const auto& [name, _] : tensors) names.insert(name);
  return names;
}


// ---- Selection and names ----

TEST(HyperConnectionModel, ConfigPutsHyperConnectionsOnEveryLayerOfAnyPattern) {
  for (const char* pattern : {"*-*-", "[*-][*-]", "-*", "**--", "[*-]*-", "[*E]G-", "M-"}) {
    SCOPED_TRACE(pattern);
    auto config = mhc_config(pattern);
    auto model = build(config, 1);
    auto& block = model->decoder();
    for (size_t i = 0; i < block.num_layers(); ++i) {
      for (const auto& child : block.layer(i).named_children()) {
        if (child.key().ends_with("_residual")) {
          EXPECT_NE(std::dynamic_pointer_cast<HyperConnection>(child.value()), nullptr) << child.key();
        }
      }
    }
    // Every canonical layer holds exactly one residual: the one of the half it is.
    const auto names = names_of(model->canonical_state_dict());
    const int64_t n = config->mhc_num_residual_streams, H = config->hidden_size;
    const auto parsed = parse_layer_pattern(pattern);
    for (const auto& layer : parsed.layers) {
      if (layer.sequence) {
        const auto prefix = cat("decoder.layers.", layer.sequence_canonical(), ".self_attn_residual.");
        for (const char* p : {"fn", "base", "scale"}) EXPECT_TRUE(names.count(prefix + p)) << prefix + p;
      }
      if (layer.channel) {
        const auto prefix = cat("decoder.layers.", layer.channel_canonical(), ".mlp_residual.");
        for (const char* p : {"fn", "base", "scale"}) EXPECT_TRUE(names.count(prefix + p)) << prefix + p;
      }
    }
    const auto tensors = model->canonical_state_dict();
    EXPECT_EQ(tensors.at("decoder.layers.0." + std::string(parsed.layers[0].sequence ? "self_attn" : "mlp") +
                         "_residual.fn")
                  .sizes(),
              (at::IntArrayRef{2 * n + n * n, n * H}));
    for (const char* p : {"hc_fn", "hc_base", "hc_scale"})
      EXPECT_TRUE(names.count(std::string("decoder.hyper_connection_head.") + p)) << p;
  }
}

TEST(HyperConnectionModel, OffByDefaultAddsNoParameters) {
  auto config = testing::small_config();
  config->hybrid_layer_pattern = "*-*-";
  config->num_layers = 4;
  for (const auto& name : names_of(build(config, 1)->canonical_state_dict())) {
    EXPECT_EQ(name.find("_residual."), std::string::npos) << name;
    EXPECT_EQ(name.find("hyper_connection_head"), std::string::npos) << name;
  }
}

TEST(HyperConnectionModel, FusedAndUnfusedLoadEachOther) {
  for (auto [fused_pattern, unfused_pattern] : {std::pair{"[*-][*-]", "*-*-"}, {"[*E][G-]", "*EG-"}}) {
    SCOPED_TRACE(fused_pattern);
    auto fused = build(mhc_config(fused_pattern), 1);
    auto unfused = build(mhc_config(unfused_pattern), 2);
    ASSERT_EQ(names_of(fused->canonical_state_dict()), names_of(unfused->canonical_state_dict()));
    auto input = at::randint(0, 64, {2, 9});
    for (auto [from, to] : {std::pair{fused, unfused}, std::pair{unfused, fused}}) {
      auto dir = testing::fresh_temp_dir("test_mhc_fusion");
      save_model_weights(*from, dir);
      load_model_weights(*to, dir);
      const auto a = from->canonical_state_dict(), b = to->canonical_state_dict();
      for (const auto& [name, tensor] : a) EXPECT_TRUE(at::equal(tensor, b.at(name))) << name;
      EXPECT_TRUE(at::equal(from->forward(input), to->forward(input)));
      std::filesystem::remove_all(dir);
    }
  }
}

// ---- The identity point ----

TEST(HyperConnectionModel, OneStreamAtTheIdentityPointIsThePlainModel) {
  // n = 1, eps = 0, every fn zero and every pre base 40 (sigmoid rounds to exactly 1): each
  // residual is PlainResidual bit for bit (hyper_connection.h), and so is the head.
  auto plain_config = testing::small_config();
  plain_config->hybrid_layer_pattern = "[*-]*-";
  plain_config->num_layers = 4;
  auto config = mhc_config("[*-]*-", 1);
  config->mhc_eps = 0.0;
  auto plain = build(plain_config, 1);
  auto mhc = build(config, 2);
  auto tensors = plain->canonical_state_dict();
  for (const auto& [name, tensor] : mhc->canonical_state_dict()) {
    if (name.ends_with("_residual.fn") || name.ends_with(".hc_fn")) tensors[name] = at::zeros_like(tensor);
    if (name.ends_with("_residual.base")) tensors[name] = at::tensor({40.0f, 0.0f, 0.0f});
    if (name.ends_with(".hc_base")) tensors[name] = at::full({1}, 40.0f);
    if (name.ends_with("_residual.scale") || name.ends_with(".hc_scale")) tensors[name] = tensor.clone();
  }
  mhc->load_canonical_state_dict(tensors, "plain model with mHC at the identity point");
  auto input = at::randint(0, 64, {2, 7});
  EXPECT_TRUE(at::equal(mhc->forward(input), plain->forward(input)));
}

// ---- Pipeline stages ----

TEST(HyperConnectionModel, FirstStageExpandsAndLastStageContracts) {
  auto config = mhc_config("*-|[*-]-");
  const auto registry = default_layer_registry(LocalBackend{}, *config);
  const auto pattern = resolve_layer_pattern(*config);
  at::manual_seed(3);
  TransformerBlock whole(config, decoder_spec(registry, *config), {});
  std::vector<std::shared_ptr<TransformerBlock>> stages;
  for (int rank = 0; rank < 2; ++rank) {
    auto spec = block_spec(registry, pipeline_slice(pattern, 2, rank), /*with_final_layernorm=*/rank == 1);
    add_hyper_connections(spec, *config);
    ASSERT_TRUE(spec.hyper_connections);
    EXPECT_EQ(spec.hyper_connections->expand, rank == 0);
    EXPECT_EQ(spec.hyper_connections->contract, rank == 1);
    stages.push_back(std::make_shared<TransformerBlock>(config, spec, ProcessGroups{}));
  }
  {  // each stage takes the whole block's tensors, by canonical name
    at::NoGradGuard no_grad;
    auto source = whole.named_parameters();
    for (auto& stage : stages)
      for (auto& p : stage->named_parameters())
        p.value().copy_(source[whole.runtime_name(stage->canonical_name(p.key()))]);
  }
  const int64_t B = 2, T = 5, H = config->hidden_size, n = config->mhc_num_residual_streams;
  RotaryEmbedding rope(config->rotary_dim(), config->rotary_base);
  auto [cos, sin] = rope.tables(T, 0, at::kCPU);
  ForwardContext ctx{.rotary_cos = cos, .rotary_sin = sin};
  auto hidden = at::randn({B, T, H});
  auto between = stages[0]->forward(hidden, ctx);
  EXPECT_EQ(between.sizes(), (at::IntArrayRef{B, T, n, H}));
  auto out = stages[1]->forward(between, ctx);
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{B, T, H}));
  EXPECT_TRUE(at::equal(out, whole.forward(hidden, ctx)));
}

// ---- Recompute ----

TEST(HyperConnectionModel, RecomputingTheMapsOfAnEightLayerBlockSavesBytesAndChangesNoBit) {
  const int64_t B = 2, T = 16;
  struct Run {
    int64_t saved_bytes;
    at::Tensor output, input_grad;
    std::map<std::string, at::Tensor> grads;
  };
  auto run = [&](bool recompute, bool fused) {
    auto config = mhc_config("*-*-*-*-");  // 8 TransformerLayers, one hyper-connection each
    if (recompute) {  // Megatron's --recompute-granularity selective --recompute-modules mhc
      config->recompute_granularity = "selective";
      config->recompute_modules = {"mhc"};
    }
    at::manual_seed(5);
    TransformerBlock block(config, decoder_spec(default_layer_registry(LocalBackend{}, *config), *config), {});
    EXPECT_EQ(block.num_layers(), 8u);
    block.set_fused_hyper_connections(fused);
    RotaryEmbedding rope(config->rotary_dim(), config->rotary_base);
    auto [cos, sin] = rope.tables(T, 0, at::kCPU);
    ForwardContext ctx{.rotary_cos = cos, .rotary_sin = sin};
    at::manual_seed(6);
    auto hidden = at::randn({B, T, config->hidden_size}).requires_grad_(true);
    auto probe = at::randn({B, T, config->hidden_size});
    Run r;
    r.saved_bytes = testing::bytes_saved_for_backward([&] { return std::vector{block.forward(hidden, ctx)}; });
    r.output = block.forward(hidden, ctx);
    (r.output * probe).sum().backward();
    r.input_grad = hidden.grad();
    for (const auto& p : block.named_parameters()) r.grads[p.key()] = p.value().grad();
    return r;
  };
  // Fused boundaries (the default) and unfused ones: recompute changes no bit of either.
  for (bool fused : {true, false}) {
    SCOPED_TRACE(fused ? "fused boundaries" : "unfused boundaries");
    const auto off = run(false, fused), on = run(true, fused);
    EXPECT_TRUE(at::equal(off.output, on.output));
    EXPECT_TRUE(at::equal(off.input_grad, on.input_grad));
    ASSERT_EQ(names_of(off.grads), names_of(on.grads));
    for (const auto& [name, grad] : off.grads) {
      ASSERT_TRUE(grad.defined()) << name;
      EXPECT_TRUE(at::equal(grad, on.grads.at(name))) << name;
    }
    EXPECT_LE(on.saved_bytes, off.saved_bytes);
    std::cout << "8-layer block, " << (fused ? "fused" : "unfused")
              << " boundaries, bytes saved for backward: mHC recompute off " << off.saved_bytes << ", on "
              << on.saved_bytes << "\n";
    if (fused) continue;
    // Unfused, what recompute leaves out at least: each hyper-connection's RMS-normalised
    // flattened streams, fn's input, [B, T, n*H] float32 (plus the small f, gates and Sinkhorn
    // input). The fused boundary's hand-written backward keeps no such copy in the first place.
    const int64_t n = 4, H = testing::small_config()->hidden_size;
    const int64_t normalised_bytes = B * T * n * H * static_cast<int64_t>(sizeof(float));
    EXPECT_GE(off.saved_bytes - on.saved_bytes, 8 * normalised_bytes);
  }
}

// ---- Fused boundaries ----

// How many nodes of the autograd graph behind `root` have a name containing `name`.
int64_t count_graph_nodes(const at::Tensor& root, const std::string& name) {
  std::vector<torch::autograd::Node*> todo{root.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  int64_t count = 0;
  while (!todo.empty()) {
    auto* node = todo.back();
    todo.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    if (node->name().find(name) != std::string::npos) ++count;
    for (const auto& edge : node->next_edges()) todo.push_back(edge.function.get());
  }
  return count;
}

TEST(HyperConnectionModel, FusedBoundariesGiveTheUnfusedLossAndGradients) {
  // Gated DeltaNet, attention, MoE and a fused [..] layer: five halves, four boundaries between
  // them; full recompute (each layer rerun alone) fuses only inside the [..] layer. On the CPU the
  // fused op's twin runs the unfused ops forward (the same loss bits); with
  // STRATA_TEST_DEVICE=cuda the kernels run, float32 and then bf16 autocast with bfloat16 streams.
  const auto device = testing::test_device();
  for (bool bf16 : {false, true}) {
    if (bf16 && !device.is_cuda()) continue;  // CUDA autocast has nothing to act on elsewhere
    SCOPED_TRACE(bf16 ? "bf16 autocast, bfloat16 streams" : "float32");
    auto config = mhc_config("G[*E]*-");
    config->fp32_residual_connection = !bf16;
    auto model = build(config, 9);
    model->to(device);
    at::manual_seed(10);
    auto tokens = at::randint(0, 64, {2, 10}).to(device);
    struct Run {
      at::Tensor loss;
      int64_t boundaries;
      std::map<std::string, at::Tensor> grads;
    };
    auto run = [&](bool fused, bool recompute) {
      model->decoder().set_recompute(recompute);
      model->decoder().set_fused_hyper_connections(fused);
      model->zero_grad();
      std::optional<compat::CudaAutocast> autocast;
      if (bf16) autocast.emplace(at::kBFloat16);
      ForwardContext ctx;
      auto loss = causal_lm_loss(model->forward(tokens, ctx), tokens);
      for (const auto& aux : ctx.aux_losses) loss = loss + aux;
      autocast.reset();
      Run r{loss.detach().cpu(), count_graph_nodes(loss, "BoundaryFunction"), {}};
      loss.backward();
      for (const auto& [name, p] : model->named_parameters().pairs()) r.grads[name] = p.grad().cpu().to(at::kDouble);
      return r;
    };
    const double loss_tolerance = bf16 ? 1e-2 : device.is_cuda() ? 1e-5 : 0.0;
    const double grad_tolerance = bf16 ? 1e-1 : device.is_cuda() ? 1e-4 : 1e-5;
    const auto unfused = run(false, false);
    EXPECT_EQ(unfused.boundaries, 0);
    for (bool recompute : {false, true}) {
      SCOPED_TRACE(recompute ? "full recompute" : "no recompute");
      const auto fused = run(true, recompute);
      if (!recompute) {
        EXPECT_EQ(fused.boundaries, 4);
      }
      const double a = fused.loss.item<double>(), b = unfused.loss.item<double>();
      if (loss_tolerance == 0.0)
        EXPECT_TRUE(at::equal(fused.loss, unfused.loss)) << a << " vs " << b;
      else
        EXPECT_NEAR(a, b, loss_tolerance * std::abs(b));
      ASSERT_EQ(names_of(fused.grads), names_of(unfused.grads));
      // Each gradient relative to its own size, or to a thousandth of the whole model's where
      // smaller: the mHC head's map gradients are cancelling sums ~1e-5 the size of the others,
      // and on CUDA the kernels' reduction order moves them by 1e-4 of their own size (the float32
      // rounding of terms much larger than their sum).
      double total_squares = 0;
      for (const auto& [name, grad] : unfused.grads) total_squares += grad.square().sum().item<double>();
      const double model_scale = 1e-3 * std::sqrt(total_squares);
      for (const auto& [name, grad] : unfused.grads) {
        const double difference = (fused.grads.at(name) - grad).norm().item<double>();
        EXPECT_LE(difference, grad_tolerance * std::max({grad.norm().item<double>(), model_scale, 1e-6})) << name;
      }
    }
  }
}

// ---- Training ----

TEST(HyperConnectionModel, HybridPatternsTrain) {
  // MoE and Gated DeltaNet layers, fused and unfused: every parameter gets a gradient, and a few
  // SGD steps on one batch lower its loss.
  for (const char* pattern : {"[*E]G-", "*-*-", "[*-]"}) {
    SCOPED_TRACE(pattern);
    auto model = build(mhc_config(pattern), 4);
    at::manual_seed(8);
    auto tokens = at::randint(0, 64, {4, 12});
    auto loss_of = [&] {
      ForwardContext ctx;
      auto loss = causal_lm_loss(model->forward(tokens, ctx), tokens);
      for (const auto& aux : ctx.aux_losses) loss = loss + aux;
      return loss;
    };
    const double first = loss_of().item<double>();
    for (int step = 0; step < 5; ++step) {
      model->zero_grad();
      loss_of().backward();
      at::NoGradGuard no_grad;
      for (const auto& [name, p] : model->named_parameters().pairs()) {
        ASSERT_TRUE(p.grad().defined()) << name;
        EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0) << name;
        p.sub_(p.grad() * 0.05);
      }
    }
    EXPECT_LT(loss_of().item<double>(), first);
  }
}

// ---- Config ----

TEST(HyperConnectionModel, ConfigFieldsRoundTripThroughJson) {
  auto config = *mhc_config("*-");
  config.mhc_num_residual_streams = 3;
  config.mhc_sinkhorn_iterations = 7;
  config.mhc_eps = 1e-4;
  config.mhc_init_gating_factor = 0.5;
  config.mhc_recompute_layer_num = 2;
  config.recompute_granularity = "selective";
  config.recompute_modules = {"mhc"};
  auto back = config_from_json(to_json(config), "round trip");
  EXPECT_TRUE(back.enable_mhc_connections);
  EXPECT_EQ(back.mhc_num_residual_streams, 3);
  EXPECT_EQ(back.mhc_sinkhorn_iterations, 7);
  EXPECT_EQ(back.mhc_eps, 1e-4);
  EXPECT_EQ(back.mhc_init_gating_factor, 0.5);
  EXPECT_EQ(back.mhc_recompute_layer_num, 2);
  EXPECT_TRUE(back.recomputes_mhc());
  const auto options = hyper_connection_options(back);
  EXPECT_EQ(options.num_residual_streams, 3);
  EXPECT_EQ(options.sinkhorn_iterations, 7);
  EXPECT_EQ(options.eps, 1e-4);
  EXPECT_EQ(options.init_gating_factor, 0.5);
  EXPECT_TRUE(options.recompute);
}

TEST(HyperConnectionModel, ValidationNamesTheField) {
  auto expect_error = [](const std::function<void(TransformerConfig&)>& change, const std::string& message) {
    auto config = *mhc_config("*-");
    change(config);
    try {
      validate(config);
      ADD_FAILURE() << "accepted; expected: " << message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  expect_error([](auto& c) { c.mhc_num_residual_streams = 0; },
               "TransformerConfig.mhc_num_residual_streams = 0: expected a positive value");
  expect_error([](auto& c) { c.mhc_sinkhorn_iterations = -1; }, "TransformerConfig.mhc_sinkhorn_iterations = -1");
  expect_error([](auto& c) { c.mhc_eps = -0.5; }, "TransformerConfig.mhc_eps = -0.5: expected a finite value >= 0");
  expect_error([](auto& c) { c.mhc_recompute_layer_num = -3; }, "TransformerConfig.mhc_recompute_layer_num = -3");
  expect_error(
      [](auto& c) {
        c.enable_mhc_connections = false;
        c.recompute_granularity = "selective";
        c.recompute_modules = {"mhc"};
      },
      "recompute_modules holds 'mhc' but enable_mhc_connections is false");
  auto off = *mhc_config("*-");
  off.enable_mhc_connections = false;
  off.mhc_num_residual_streams = 0;  // ignored while mHC is off
  EXPECT_NO_THROW(validate(off));
}

}  // namespace
}  // namespace strata
