// TransformerLayer's step structure, with recording modules in every slot.
#include "strata/model/transformer_layer.h"

#include <gtest/gtest.h>

#include "strata/layers/residual.h"
#include "test_util.h"

namespace strata {
namespace {

using Log = std::shared_ptr<std::vector<std::string>>;

// Each recording module appends its slot name and adds a distinct constant so the test can also
// check the arithmetic that connects the steps.
struct RecordingNorm : NormModule {
  RecordingNorm(Log log, std::string name) : log(std::move(log)), name(std::move(name)) {}
  at::Tensor forward(const at::Tensor& x) override {
    log->push_back(name);
    return x * 2;
  }
  Log log;
  std::string name;
};

template <class Interface>
struct RecordingMixer : Interface {
  RecordingMixer(Log log, std::string name, double add) : log(std::move(log)), name(std::move(name)), add(add) {}
  MixerOutput forward(const at::Tensor& x, ForwardContext&) override {
    log->push_back(name);
    return {x + add, at::full({}, 0.5)};
  }
  Log log;
  std::string name;
  double add;
};

struct RecordingBda : BiasDropoutAddModule {
  RecordingBda(Log log, std::string name) : log(std::move(log)), name(std::move(name)) {}
  at::Tensor forward(const MixerOutput& out, const at::Tensor& residual) override {
    log->push_back(name);
    return residual + out.output + *out.bias;
  }
  Log log;
  std::string name;
};

auto norm(Log log, const char* name) {
  return [=](const NormArgs&) { return std::make_shared<RecordingNorm>(log, name); };
}
auto bda(Log log, const char* name) {
  return [=](const LayerArgs&) { return std::make_shared<RecordingBda>(log, name); };
}

TEST(TransformerLayer, RunsTheStepsInMegatronOrder) {
  auto log = std::make_shared<std::vector<std::string>>();
  TransformerLayerSubmodules sub;
  sub.input_layernorm = norm(log, "input_layernorm");
  sub.self_attention = [=](const LayerArgs&) {
    return std::make_shared<RecordingMixer<SequenceMixer>>(log, "self_attention", 1.0);
  };
  sub.self_attn_bda = bda(log, "self_attn_bda");
  sub.pre_cross_attn_layernorm = norm(log, "pre_cross_attn_layernorm");
  sub.cross_attention = [=](const LayerArgs&) {
    return std::make_shared<RecordingMixer<CrossAttentionMixer>>(log, "cross_attention", 10.0);
  };
  sub.cross_attn_bda = bda(log, "cross_attn_bda");
  sub.pre_mlp_layernorm = norm(log, "pre_mlp_layernorm");
  sub.mlp = [=](const LayerArgs&) { return std::make_shared<RecordingMixer<ChannelMixer>>(log, "mlp", 100.0); };
  sub.mlp_bda = bda(log, "mlp_bda");

  TransformerLayer layer(sub, LayerArgs{.config = testing::small_config(), .layer_number = 1});
  ForwardContext ctx;
  auto x = at::ones({1, 2, 32});
  auto y = layer.forward(x, ctx);

  EXPECT_EQ(*log, (std::vector<std::string>{"input_layernorm", "self_attention", "self_attn_bda",
                                            "pre_cross_attn_layernorm", "cross_attention", "cross_attn_bda",
                                            "pre_mlp_layernorm", "mlp", "mlp_bda"}));
  // Each half: h + (2h + add) + 0.5 = 3h + add + 0.5.
  double h = 1.0;
  for (double add : {1.0, 10.0, 100.0}) h = 3 * h + add + 0.5;
  EXPECT_TRUE(at::allclose(y, at::full({1, 2, 32}, h)));
}

TEST(TransformerLayer, AbsentHalvesAreSkippedEntirely) {
  auto log = std::make_shared<std::vector<std::string>>();
  TransformerLayerSubmodules sub;
  sub.pre_mlp_layernorm = norm(log, "pre_mlp_layernorm");
  sub.mlp = [=](const LayerArgs&) { return std::make_shared<RecordingMixer<ChannelMixer>>(log, "mlp", 1.0); };
  sub.mlp_bda = bda(log, "mlp_bda");
  TransformerLayer layer(sub, LayerArgs{.config = testing::small_config()});
  ForwardContext ctx;
  layer.forward(at::ones({1, 1, 32}), ctx);
  EXPECT_EQ(*log, (std::vector<std::string>{"pre_mlp_layernorm", "mlp", "mlp_bda"}));
  for (const auto& p : layer.named_parameters()) ADD_FAILURE() << "unexpected parameter " << p.key();
}

// A residual policy that scales the stream before each sublayer: proves the slot is honoured.
struct HalvingResidual : ResidualConnection {
  at::Tensor sublayer_input(const at::Tensor& s) override { return s * 0.5; }
  at::Tensor combine(const at::Tensor& s, const MixerOutput& out, BiasDropoutAddModule& bda) override {
    return bda.forward(out, s);
  }
};

TEST(TransformerLayer, ResidualSlotDecidesWhatTheSublayerReads) {
  auto log = std::make_shared<std::vector<std::string>>();
  TransformerLayerSubmodules sub;
  sub.mlp = [=](const LayerArgs&) { return std::make_shared<RecordingMixer<ChannelMixer>>(log, "mlp", 0.0); };
  sub.mlp_bda = bda(log, "mlp_bda");
  sub.residual = [](const LayerArgs&) { return std::make_shared<HalvingResidual>(); };
  TransformerLayer layer(sub, LayerArgs{.config = testing::small_config()});
  ForwardContext ctx;
  auto y = layer.forward(at::full({1, 1, 32}, 4.0), ctx);
  // 4 + (4 * 0.5 + 0) + 0.5
  EXPECT_TRUE(at::allclose(y, at::full({1, 1, 32}, 6.5)));
}

TEST(TransformerLayer, EverySlotReceivesTheLayersArguments) {
  std::vector<int64_t> seen;
  TransformerLayerSubmodules sub;
  sub.self_attention = [&](const LayerArgs& a) {
    seen.push_back(a.layer_number);
    return std::make_shared<RecordingMixer<SequenceMixer>>(std::make_shared<std::vector<std::string>>(), "a", 0.0);
  };
  sub.mlp = [&](const LayerArgs& a) {
    seen.push_back(a.layer_number * (a.is_mtp_layer ? 100 : 1));
    return std::make_shared<RecordingMixer<ChannelMixer>>(std::make_shared<std::vector<std::string>>(), "m", 0.0);
  };
  TransformerLayer layer(sub, LayerArgs{.config = testing::small_config(), .layer_number = 5, .is_mtp_layer = true});
  // The fused layer's channel half is the canonical layer after its sequence mixer: number 6.
  EXPECT_EQ(seen, (std::vector<int64_t>{5, 600}));
}

}  // namespace
}  // namespace strata
