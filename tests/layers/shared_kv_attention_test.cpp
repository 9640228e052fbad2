// DeepSeek-V4's shared-KV attention (W, C, H): its pieces against float64 references written out
// here, the indexer's choice mattering, and decoding with every cache (sliding window, compressed
// entries and the incomplete window, the indexer's compressor) equal to the full forward.
#include "strata/layers/shared_kv_attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "strata/backends/local_backend.h"
#include "strata/model/layer_pattern.h"
#include "layers/shared_kv_test_config.h"

namespace strata {
namespace {

std::shared_ptr<SequenceMixer> build(CompressedBranch branch, std::shared_ptr<TransformerConfig> config) {
  auto mixer =
      SharedKvAttention::builder(shared_kv_attention_submodules(LocalBackend{}, branch))(LayerArgs{.config = config});
  // Norm weights, sinks and position biases start at constants; make them matter.
  at::NoGradGuard no_grad;
  for (auto& p : mixer->named_parameters()) {
    const auto& name = p.key();
    if (name.find("layernorm") != std::string::npos) p.value().normal_(1.0, 0.2);
    if (name.find("sinks") != std::string::npos || name.find("position_bias") != std::string::npos)
      p.value().normal_(0.0, 1.0);
  }
  return mixer;
}

TEST(InterleavedRotary, RotatesTheLastChannelsInPairsAndMinusSinUndoesIt) {
  auto x = at::randn({1, 3, 2, 6}, at::kDouble);
  InterleavedRotary rotary(4, 10000.0);
  auto [cos, sin] = rotary.tables(at::arange(5, 8, at::kLong));
  auto y = apply_interleaved_rotary(x, cos.to(at::kDouble), sin.to(at::kDouble));
  EXPECT_TRUE(at::equal(y.narrow(-1, 0, 2), x.narrow(-1, 0, 2)));  // the leading channels pass through
  // Pair (x2, x3) of position 6 turns by 6 * 10000^0 = 6 radians, pair (x4, x5) by 6 * 10000^(-1/2).
  for (auto [channel, angle] : {std::pair{2, 6.0}, std::pair{4, 6.0 / 100.0}}) {
    const double a = x[0][1][1][channel].item<double>(), b = x[0][1][1][channel + 1].item<double>();
    EXPECT_NEAR(y[0][1][1][channel].item<double>(), a * std::cos(angle) - b * std::sin(angle), 1e-5);
    EXPECT_NEAR(y[0][1][1][channel + 1].item<double>(), b * std::cos(angle) + a * std::sin(angle), 1e-5);
  }
  auto back = apply_interleaved_rotary(y, cos.to(at::kDouble), -sin.to(at::kDouble));
  EXPECT_TRUE(at::allclose(back, x, 1e-6, 1e-6));
}

TEST(BlockDiagonalLinear, IsADenseLinearWithABlockDiagonalWeight) {
  BlockDiagonalLinear grouped(3, 4, 2, 0.5);
  grouped.to(at::kDouble);
  auto weight = grouped.named_parameters()["weight"];  // [3 * 2, 4]
  auto dense = at::zeros({6, 12}, at::kDouble);
  for (int64_t g = 0; g < 3; ++g) dense.narrow(0, 2 * g, 2).narrow(1, 4 * g, 4).copy_(weight.narrow(0, 2 * g, 2));
  auto x = at::randn({2, 5, 3, 4}, at::kDouble);
  EXPECT_TRUE(at::allclose(grouped.forward(x), at::linear(x.flatten(-2), dense), 1e-12, 1e-12));
}

TEST(KvCompressor, OverlappingEntriesPoolTwoWindowsAsAFloat64LoopDoes) {
  auto config = testing::small_shared_kv_config();
  KvCompressor compressor(config, {.width = 8, .rate = 4, .overlapping = true}, kv_compressor_submodules(LocalBackend{}));
  compressor.to(at::kDouble);
  auto params = compressor.named_parameters();
  {
    at::NoGradGuard no_grad;
    params["position_bias"].normal_(0.0, 1.0);
  }
  auto x = at::randn({1, 10, config->hidden_size}, at::kDouble);  // two whole windows, two tokens left over
  auto entries = compressor.forward(x);
  ASSERT_EQ(entries.sizes(), at::IntArrayRef({1, 2, 8}));

  auto kv = at::linear(x[0], params["linear_kv_proj.weight"]), gate = at::linear(x[0], params["linear_gate_proj.weight"]);
  auto bias = params["position_bias"];
  InterleavedRotary rotary(4, config->compress_rotary_base);
  for (int64_t w = 0; w < 2; ++w) {
    // Slots: window w - 1's a series (none for w = 0), then window w's b series.
    std::vector<at::Tensor> slot_kv, slot_gate;
    for (int64_t j = 0; j < 4 && w > 0; ++j) {
      slot_kv.push_back(kv[4 * (w - 1) + j].narrow(0, 0, 8));
      slot_gate.push_back(gate[4 * (w - 1) + j].narrow(0, 0, 8) + bias[j].narrow(0, 0, 8));
    }
    for (int64_t j = 0; j < 4; ++j) {
      slot_kv.push_back(kv[4 * w + j].narrow(0, 8, 8));
      slot_gate.push_back(gate[4 * w + j].narrow(0, 8, 8) + bias[j].narrow(0, 8, 8));
    }
    auto pooled = (at::stack(slot_kv) * at::softmax(at::stack(slot_gate), 0)).sum(0);
    auto normed = pooled * at::rsqrt(pooled.square().mean() + config->layernorm_epsilon) * params["kv_layernorm.weight"];
    auto [cos, sin] = rotary.tables(at::full({1}, 4 * w, at::kLong));
    auto expected = apply_interleaved_rotary(normed.view({1, 1, 1, 8}), cos.to(at::kDouble), sin.to(at::kDouble));
    EXPECT_TRUE(at::allclose(entries[0][w], expected.view({8}), 1e-5, 1e-5)) << "entry " << w;
  }
}

TEST(SharedKvAttention, TheIndexersChoiceChangesTheOutput) {
  at::manual_seed(3);
  auto few = testing::small_shared_kv_config(), all = testing::small_shared_kv_config();
  few->dsa_indexer_topk = 1;
  all->dsa_indexer_topk = 100;
  auto sparse = build(CompressedBranch::Sparse, few), dense = build(CompressedBranch::Sparse, all);
  {
    at::NoGradGuard no_grad;
    auto target = dense->named_parameters();
    for (auto& p : sparse->named_parameters()) target[p.key()].copy_(p.value());
  }
  auto x = at::randn({1, 24, few->hidden_size});
  ForwardContext a, b;
  auto out_few = sparse->forward(x, a).output, out_all = dense->forward(x, b).output;
  // Before position 7 at most one window is complete: both read the same entries.
  EXPECT_TRUE(at::allclose(out_few.narrow(1, 0, 7), out_all.narrow(1, 0, 7), 1e-6, 1e-6));
  EXPECT_GT((out_few.narrow(1, 7, 17) - out_all.narrow(1, 7, 17)).abs().max().item<double>(), 1e-4);
}

TEST(SharedKvAttention, TheSlidingWindowBoundsWhatAQuerySees) {
  auto config = testing::small_shared_kv_config();
  auto mixer = build(CompressedBranch::None, config);
  auto x = at::randn({1, 12, config->hidden_size});
  ForwardContext ctx;
  auto out = mixer->forward(x, ctx).output;
  // Changing token 0 reaches positions 0 .. 5 (window 6) and no later one.
  auto changed = x.clone();
  changed[0][0].add_(1.0);
  ForwardContext ctx2;
  auto out2 = mixer->forward(changed, ctx2).output;
  EXPECT_GT((out2 - out).narrow(1, 0, 6).abs().amax({0, 2}).min().item<double>(), 1e-6);
  EXPECT_TRUE(at::equal(out2.narrow(1, 6, 6), out.narrow(1, 6, 6)));
}

// Decoding in chunks of every size, across window and compression boundaries, equals the full
// forward. Two indexer heads: about one entry in four scores exactly 0, and the ties at the k-th
// place go to the lowest entries whatever the number ranked at once (top_k_selection.h).
class SharedKvDecoding : public ::testing::TestWithParam<CompressedBranch> {};

TEST_P(SharedKvDecoding, ChunkedDecodingEqualsTheFullForward) {
  at::manual_seed(7);
  auto config = testing::small_shared_kv_config();
  auto mixer = build(GetParam(), config);
  const int64_t B = 2, T = 37;  // > 6 windows of the sliding window; 9 CSA and 4 HCA entries
  auto x = at::randn({B, T, config->hidden_size});
  ForwardContext full_ctx;
  auto full = mixer->forward(x, full_ctx).output;

  InferenceCache cache;
  std::vector<at::Tensor> steps;
  const int64_t chunks[] = {5, 1, 1, 3, 1, 7, 2, 1, 1, 1, 9, 1, 4};
  int64_t start = 0;
  for (int64_t len : chunks) {
    ForwardContext ctx{.cache = &cache};
    steps.push_back(mixer->forward(x.narrow(1, start, len), ctx).output);
    cache.advance(len);
    start += len;
  }
  ASSERT_EQ(start, T);
  auto decoded = at::cat(steps, 1);
  EXPECT_TRUE(at::allclose(decoded, full, 1e-5, 1e-5)) << (decoded - full).abs().max();
  const auto& state = cache.state<SharedKvAttentionState>(1);
  EXPECT_EQ(state.window.size(1), config->sliding_window_size - 1);
  if (GetParam() == CompressedBranch::Heavy) {
    EXPECT_EQ(state.compressor.num_entries(), 4);
  }
  if (GetParam() == CompressedBranch::Sparse) {
    EXPECT_EQ(state.compressor.num_entries(), 9);
    EXPECT_EQ(state.indexer.num_entries(), 9);
    EXPECT_EQ(state.compressor.pending_kv.size(1), 1);  // position 36 waits for its window
  }
}

INSTANTIATE_TEST_SUITE_P(EveryBranch, SharedKvDecoding,
                         ::testing::Values(CompressedBranch::None, CompressedBranch::Sparse, CompressedBranch::Heavy));

TEST(SharedKvAttention, PatternSymbolsNameTheThreeKinds) {
  auto p = parse_layer_pattern("[WE][CE]H-");
  ASSERT_EQ(p.layers.size(), 4u);
  EXPECT_EQ(p.layers[0].sequence, SequenceMixerKind::SlidingWindowAttention);
  EXPECT_EQ(p.layers[1].sequence, SequenceMixerKind::CompressedSparseAttention);
  EXPECT_EQ(p.layers[2].sequence, SequenceMixerKind::HeavilyCompressedAttention);
  EXPECT_EQ(p.layers_text(), "[WE][CE]H-");
  EXPECT_EQ(name(SequenceMixerKind::CompressedSparseAttention), "compressed sparse attention");
}

TEST(SharedKvAttention, BadConfigValuesAreNamed) {
  auto config = testing::small_shared_kv_config();
  config->num_query_groups = 2;
  EXPECT_NE(testing::error_of([&] { build(CompressedBranch::None, config); }).find("num_query_groups = 2"),
            std::string::npos);
  config = testing::small_shared_kv_config();
  config->attention_output_groups = 3;
  EXPECT_NE(testing::error_of([&] { build(CompressedBranch::None, config); }).find("attention_output_groups = 3"),
            std::string::npos);
}

}  // namespace
}  // namespace strata
