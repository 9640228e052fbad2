// Incremental decoding with caches equals recomputing the whole sequence every step.
#include "strata/infer/generate.h"

#include <gtest/gtest.h>

#include "strata/kernels/dispatch.h"
#include "strata/model/build_model.h"
#include "test_util.h"

namespace strata::infer {
namespace {

std::shared_ptr<LanguageModel> model_for(const std::string& pattern, const std::string& attention_variant = "") {
  auto c = testing::small_config();
  c->hybrid_layer_pattern = pattern;
  c->experimental_attention_variant = attention_variant;
  c->num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  c->rotary_percent = 0.5;
  testing::use_small_hybrid_mixers(*c);
  at::manual_seed(4);
  auto model = build_language_model(c);
  model->to(testing::test_device());
  model->eval();
  return model;
}

void expect_incremental_equals_full(LanguageModel& model) {
  at::NoGradGuard no_grad;
  const auto device = testing::test_device();
  auto tokens = at::randint(1, 64, {2, 11}, at::TensorOptions().dtype(at::kLong).device(device));
  auto full = model.forward(tokens);
  // Prefill 5 tokens, then one at a time.
  InferenceCache cache;
  ForwardContext ctx;
  ctx.cache = &cache;
  std::vector<at::Tensor> pieces{model.forward(tokens.narrow(1, 0, 5), ctx)};
  for (int64_t t = 5; t < 11; ++t) pieces.push_back(model.forward(tokens.narrow(1, t, 1), ctx));
  auto incremental = at::cat(pieces, 1);
  EXPECT_TRUE(at::allclose(incremental, full, 1e-5, 1e-5)) << (incremental - full).abs().max();
  EXPECT_EQ(cache.sequence_length(), 11);
}

TEST(Generate, IncrementalDecodingEqualsFullRecompute) {
  for (const char* pattern : {"[*-][*-]", "*-*-"}) {
    SCOPED_TRACE(pattern);
    expect_incremental_equals_full(*model_for(pattern));
  }
}

TEST(Generate, GreedyGenerationMatchesArgmaxOfFullRecompute) {
  auto model = model_for("[*-][*-]");
  std::vector<int64_t> prompt{3, 9, 27, 17};
  auto generated = generate(*model, prompt, {.max_new_tokens = 6});
  ASSERT_EQ(generated.size(), 6u);
  at::NoGradGuard no_grad;
  auto sequence = prompt;
  for (auto token : generated) {
    auto logits = model->forward(at::tensor(sequence, at::kLong).unsqueeze(0).to(testing::test_device()));
    EXPECT_EQ(logits[0][-1].argmax().item<int64_t>(), token);
    sequence.push_back(token);
  }
}

// What a CUDA graph replays: decode steps over the fixed-capacity cache (KV buffers written at
// device-held positions, attention masked past them, states updated in place) give the logits of
// the growing caches, for every mixer with a decode state.
TEST(Generate, FixedCapacityCacheDecodesLikeTheGrowingOne) {
  for (const char* pattern : {"*-*-", "G-*-", "M-*-", "[G-][*-]"}) {
    SCOPED_TRACE(pattern);
    auto model = model_for(pattern);
    at::NoGradGuard no_grad;
    const auto device = testing::test_device();
    auto tokens = at::randint(1, 64, {2, 9}, at::TensorOptions().dtype(at::kLong).device(device));
    auto full = model->forward(tokens);
    InferenceCache cache(9);
    ForwardContext ctx;
    ctx.cache = &cache;
    cache.set_positions(at::arange(4, tokens.options()));
    std::vector<at::Tensor> pieces{model->forward(tokens.narrow(1, 0, 4), ctx)};
    auto position = at::empty({1}, tokens.options());
    cache.set_positions(position);
    for (int64_t t = 4; t < 9; ++t) {
      position.fill_(t);
      pieces.push_back(model->forward(tokens.narrow(1, t, 1), ctx));
    }
    auto fixed = at::cat(pieces, 1);
    EXPECT_TRUE(at::allclose(fixed, full, 1e-5, 1e-5)) << (fixed - full).abs().max();
  }
}

TEST(Generate, EveryDecodeModeGeneratesTheSameTokens) {
  auto model = model_for("G-*-");
  std::vector<int64_t> prompt{3, 9, 27, 17, 5};
  auto eager = generate(*model, prompt, {.max_new_tokens = 7, .decode = DecodeMode::eager});
  EXPECT_EQ(generate(*model, prompt, {.max_new_tokens = 7, .decode = DecodeMode::fixed_capacity}), eager);
  EXPECT_EQ(generate(*model, prompt, {.max_new_tokens = 7}), eager);  // a CUDA graph on the GPU machine
  EXPECT_EQ(decodes_with_cuda_graph(*model, testing::test_device()), testing::test_device().is_cuda() && kernels::cuda_kernels_built());
  EXPECT_FALSE(decodes_with_cuda_graph(*model_for("M-*-"), testing::test_device()));
}

// Gated DeltaNet-2's decode step (LibTorch ops: no host synchronisation, its state updated in
// place) under a CUDA graph on the GPU machine.
TEST(Generate, GatedDeltaNet2GeneratesTheSameTokensInEveryDecodeMode) {
  auto model = model_for("G-*-", "gdn2");
  std::vector<int64_t> prompt{3, 9, 27, 17, 5};
  auto eager = generate(*model, prompt, {.max_new_tokens = 7, .decode = DecodeMode::eager});
  EXPECT_EQ(generate(*model, prompt, {.max_new_tokens = 7, .decode = DecodeMode::fixed_capacity}), eager);
  EXPECT_EQ(generate(*model, prompt, {.max_new_tokens = 7}), eager);
  EXPECT_EQ(decodes_with_cuda_graph(*model, testing::test_device()),
            testing::test_device().is_cuda() && kernels::cuda_kernels_built());
}

TEST(Generate, SamplingFiltersRespectTopKAndTopP) {
  auto logits = at::tensor({0.0f, 1.0f, 2.0f, 3.0f, 4.0f});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  for (int i = 0; i < 50; ++i) {
    EXPECT_GE(sample_token(logits, {.temperature = 1.0, .top_k = 2}, gen), 3);
    // top_p 0.5: token 4 alone has 64% of the mass.
    EXPECT_EQ(sample_token(logits, {.temperature = 1.0, .top_p = 0.5}, gen), 4);
  }
  EXPECT_EQ(sample_token(logits, {.temperature = 0.0}, gen), 4);
}

TEST(Generate, NonFiniteLogitsAreAnErrorNotTokenZeroForever) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto nan = std::numeric_limits<float>::quiet_NaN();
  for (const double temperature : {0.0, 1.0})
    EXPECT_NE(testing::error_of([&] { sample_token(at::tensor({0.0f, nan, 1.0f}), {.temperature = temperature}, gen); })
                  .find("the model's logits hold NaN or infinity"),
              std::string::npos);
}

}  // namespace
}  // namespace strata::infer
