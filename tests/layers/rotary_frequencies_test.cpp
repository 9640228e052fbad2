// Scaled RoPE's frequencies and factors: hand-checkable cases, and the values HF transformers 5.17
// computed for the configs of tests/fixtures/hf_scaled_rope (16 rotated dimensions, base 10^4).
#include "strata/layers/rotary_frequencies.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "strata/core/error.h"
#include "strata/layers/rotary.h"
#include "test_util.h"

namespace strata {
namespace {

constexpr double kBase = 10000.0;
constexpr int64_t kDim = 16;

std::vector<float> values(const at::Tensor& t) {
  auto c = t.to(at::kCPU, at::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

std::vector<float> frequencies(const RotaryScaling& scaling) {
  return values(rotary_inverse_frequencies(kDim, kBase, scaling, at::kCPU));
}

void expect_same_floats(const std::vector<float>& actual, const std::vector<float>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) EXPECT_FLOAT_EQ(actual[i], expected[i]) << "pair " << i;
}

RotaryScaling yarn(double factor, int64_t original) {
  RotaryScaling s;
  s.kind = RotaryScalingKind::Yarn;
  s.factor = factor;
  s.original_max_position_embeddings = original;
  return s;
}

RotaryScaling llama3() {
  RotaryScaling s;
  s.kind = RotaryScalingKind::Llama3;
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position_embeddings = 8192;
  return s;
}

TEST(RotaryFrequencies, UnscaledArePowersOfTheBase) {
  const auto plain = frequencies({});
  for (int64_t i = 0; i < kDim / 2; ++i) EXPECT_FLOAT_EQ(plain[i], std::pow(kBase, -2.0 * i / kDim)) << i;
  EXPECT_EQ(rotary_table_scale({}), 1.0);
}

TEST(RotaryFrequencies, LinearFactorTwoHalvesEveryFrequency) {
  RotaryScaling linear;
  linear.kind = RotaryScalingKind::Linear;
  linear.factor = 2.0;
  const auto plain = frequencies({}), scaled = frequencies(linear);
  for (int64_t i = 0; i < kDim / 2; ++i) EXPECT_EQ(scaled[i], plain[i] / 2.0f) << i;
  EXPECT_EQ(rotary_table_scale(linear), 1.0);
}

TEST(RotaryFrequencies, YarnWithFactorOneIsPlainRope) {
  expect_same_floats(frequencies(yarn(1.0, 4096)), frequencies({}));
  EXPECT_EQ(rotary_table_scale(yarn(1.0, 4096)), 1.0);  // yarn_mscale is 1 for factors up to 1
}

// Over 4096 positions, pairs 0..2 turn more than 32 times (kept), pairs 6.. fewer than once
// (divided by the factor); pairs 3..5 sit on the ramp from index 2 to 6.
TEST(RotaryFrequencies, YarnKeepsFastPairsDividesSlowOnesAndRampsBetween) {
  const auto plain = frequencies({}), scaled = frequencies(yarn(4.0, 4096));
  for (int i : {0, 1, 2}) EXPECT_FLOAT_EQ(scaled[i], plain[i]) << i;
  for (int i : {6, 7}) EXPECT_FLOAT_EQ(scaled[i], plain[i] / 4.0f) << i;
  for (int i : {3, 4, 5}) {
    const float ramp = (i - 2) / 4.0f;
    EXPECT_FLOAT_EQ(scaled[i], plain[i] / 4.0f * ramp + plain[i] * (1 - ramp)) << i;
  }
  // HF's qwen3_dense_yarn fixture.
  expect_same_floats(scaled, {1.0f, 0.3162277638912201f, 0.10000000149011612f, 0.025693506002426147f,
                              0.00624999962747097f, 0.0013834965648129582f, 0.0002500000118743628f,
                              7.905694656074047e-05f});
  EXPECT_NEAR(rotary_table_scale(yarn(4.0, 4096)), 1.138629436111989, 1e-15);  // 0.1 ln 4 + 1
}

TEST(RotaryFrequencies, YarnWithoutTruncationRampsBetweenFractionalEnds) {
  auto untruncated = yarn(4.0, 4096);
  untruncated.truncate = false;
  const auto plain = frequencies({}), scaled = frequencies(untruncated);
  // The ramp runs from pair 2.62 to pair 5.63 instead of from 2 to 6.
  const double low = kDim * std::log(4096 / (32 * 2 * std::numbers::pi)) / (2 * std::log(kBase));
  const double high = kDim * std::log(4096 / (2 * std::numbers::pi)) / (2 * std::log(kBase));
  for (int i = 0; i < kDim / 2; ++i) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    EXPECT_NEAR(scaled[i], plain[i] / 4.0 * ramp + plain[i] * (1 - ramp), 1e-6 * plain[i]) << i;
  }
}

// DeepSeek-V3's YaRN: factor 40 and two mscales (HF's deepseek_v32_yarn fixture).
TEST(RotaryFrequencies, DeepseekYarnScalesTablesAndTheLatentSoftmax) {
  auto deepseek = yarn(40.0, 4096);
  deepseek.mscale = 1.0;
  deepseek.mscale_all_dim = 0.8;
  expect_same_floats(frequencies(deepseek), {1.0f, 0.3162277638912201f, 0.10000000149011612f, 0.023914724588394165f,
                                             0.005124999675899744f, 0.0008498621755279601f, 2.499999936844688e-05f,
                                             7.905694474175107e-06f});
  EXPECT_NEAR(rotary_table_scale(deepseek), 1.0569662567531275, 1e-15);
  // HF's softmax scale of the fixture's MLA (query/key heads of 16 + 16).
  EXPECT_NEAR(latent_attention_softmax_scale_factor(deepseek) / std::sqrt(32.0), 0.2965094664090808, 1e-15);
  EXPECT_EQ(latent_attention_softmax_scale_factor(yarn(40.0, 4096)), 1.0);  // no mscale_all_dim, no change
  deepseek.attention_factor = 0.5;  // given, it is used as is
  EXPECT_EQ(rotary_table_scale(deepseek), 0.5);
}

// Wavelengths below 8192 / 4 = 2048 positions keep their frequency, those above 8192 are divided
// by 8, and pair 6 (wavelength 6283) blends the two.
TEST(RotaryFrequencies, Llama3KeepsHighFrequenciesDividesLowOnesAndBlendsTheMiddle) {
  const auto plain = frequencies({}), scaled = frequencies(llama3());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(scaled[i], plain[i]) << i;
  EXPECT_FLOAT_EQ(scaled[7], plain[7] / 8.0f);
  const double smooth = (8192 * plain[6] / (2 * std::numbers::pi) - 1.0) / (4.0 - 1.0);
  EXPECT_NEAR(scaled[6], (1 - smooth) * plain[6] / 8.0 + smooth * plain[6], 1e-6 * plain[6]);
  EXPECT_FLOAT_EQ(scaled[6], 0.00021360757818911225f);  // HF's qwen3_dense_llama3 fixture
  EXPECT_EQ(rotary_table_scale(llama3()), 1.0);
}

TEST(RotaryFrequencies, EmbeddingTablesCarryTheScaleInBothForms) {
  const auto scaling = yarn(4.0, 4096);
  RotaryEmbedding rope(kDim, kBase, scaling);
  auto [cos, sin] = rope.tables(5, /*offset=*/3, at::kCPU);
  auto [cos_at, sin_at] = rope.tables(at::arange(3, 8, at::kLong));
  EXPECT_TRUE(at::equal(cos, cos_at));
  EXPECT_TRUE(at::equal(sin, sin_at));
  auto [cos0, sin0] = rope.tables(1, 0, at::kCPU);
  EXPECT_TRUE(at::allclose(cos0, at::full_like(cos0, rotary_table_scale(scaling))));
  EXPECT_TRUE(at::equal(sin0, at::zeros_like(sin0)));
  // Position p, pair i turns by p * inv_freq[i].
  const auto inv_freq = frequencies(scaling);
  for (int64_t i = 0; i < kDim / 2; ++i)
    EXPECT_NEAR(sin[2][i].item<double>(), rotary_table_scale(scaling) * std::sin(5.0 * inv_freq[i]), 1e-6) << i;
}

TEST(RotaryFrequencies, BadScalingFieldsAreNamed) {
  auto zero_factor = yarn(0.0, 4096);
  EXPECT_EQ(testing::error_of([&] { RotaryEmbedding rope(kDim, kBase, zero_factor); }),
            "rotary embedding: scaling.factor = 0 (yarn): expected a positive, finite value");
  auto no_context = yarn(4.0, 0);
  EXPECT_EQ(testing::error_of([&] { RotaryEmbedding rope(kDim, kBase, no_context); }),
            "rotary embedding: scaling.original_max_position_embeddings = 0 (yarn): expected the positive "
            "pre-training context length");
  auto inverted = llama3();
  inverted.high_freq_factor = 0.5;
  EXPECT_EQ(testing::error_of([&] { RotaryEmbedding rope(kDim, kBase, inverted); }),
            "rotary embedding: scaling.high_freq_factor = 0.5 (llama3): expected more than low_freq_factor = 1 (the "
            "smooth band lies between them)");
}

}  // namespace
}  // namespace strata
