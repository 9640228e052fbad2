#include "strata/train/megatron_blend.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata::train {
namespace {

using testing::error_of;

TEST(MegatronSplit, MegatronsDefaultOnTwoHundredDocuments) {
  const auto split = parse_split("969,30,1");
  EXPECT_DOUBLE_EQ(split[0], 0.969);
  EXPECT_DOUBLE_EQ(split[1], 0.03);
  EXPECT_DOUBLE_EQ(split[2], 0.001);
  // 0.969 x 200 = 193.8 -> 194; 0.999 x 200 = 199.8 -> 200; the test split is [200, 200).
  EXPECT_EQ(split_range(split, 0, 200), (std::pair<int64_t, int64_t>{0, 194}));
  EXPECT_EQ(split_range(split, 1, 200), (std::pair<int64_t, int64_t>{194, 200}));
  EXPECT_EQ(split_range(split, 2, 200), (std::pair<int64_t, int64_t>{200, 200}));
}

TEST(MegatronSplit, BoundariesRoundHalvesToEvenAsPythonDoes) {
  // "1,1" on 5 sequences: 0.5 x 5 = 2.5 rounds to 2 (Python's round), not 3.
  const auto split = parse_split("1,1");
  EXPECT_EQ(split_range(split, 0, 5), (std::pair<int64_t, int64_t>{0, 2}));
  EXPECT_EQ(split_range(split, 1, 5), (std::pair<int64_t, int64_t>{2, 5}));
  EXPECT_EQ(split_range(split, 2, 5), (std::pair<int64_t, int64_t>{0, 0}));  // padded with a zero share
  // On 7 sequences 3.5 rounds to 4.
  EXPECT_EQ(split_range(split, 0, 7), (std::pair<int64_t, int64_t>{0, 4}));
}

TEST(MegatronSplit, NumbersAreFoundAsMegatronsRegexFindsThem) {
  const auto split = parse_split("90, 5, 5");
  EXPECT_DOUBLE_EQ(split[0], 0.9);
  EXPECT_DOUBLE_EQ(parse_split("0.98/0.02")[1], 0.02);
  EXPECT_NE(error_of([] { parse_split("1,1,1,1"); }).find("--split 1,1,1,1: 4 shares, expected at most 3"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_split("0,0,0"); }).find("the shares add up to 0"), std::string::npos);
  EXPECT_NE(error_of([] { parse_split("1..2,3"); }).find("'1..2' is not a number"), std::string::npos);
}

TEST(MegatronBlend, WeightsAndPrefixes) {
  const auto weighted = parse_blend({"0.3", "a", "0.7", "b"});
  EXPECT_EQ(weighted.prefixes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*weighted.weights, (std::vector<double>{0.3, 0.7}));
  const auto sized = parse_blend({"a", "b"});
  EXPECT_EQ(sized.prefixes, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(sized.weights);
  EXPECT_NE(error_of([] { parse_blend({"0.3", "a", "b"}); }).find("give a weight before every prefix"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_blend({"0", "a"}); }).find("weight 0 of a must be a finite number above 0"),
            std::string::npos);
}

TEST(MegatronBlend, SamplesPerDatasetWithTheSurplus) {
  // ceil(ceil(500 x 0.3) x 1.005) = ceil(150.75) = 151; ceil(ceil(350) x 1.005) = 352.
  EXPECT_EQ(samples_per_dataset({0.3, 0.7}, 500, kMidLevelDatasetSurplus), (std::vector<int64_t>{151, 352}));
  EXPECT_EQ(samples_per_dataset({0.3, 0.7}, 500, 0.0), (std::vector<int64_t>{150, 350}));
  // 7 x 0.1 rounds up to 1, then x 1.005 up to 2; 7 x 0.9 = 6.3 up to 7, then 7.035 up to 8.
  EXPECT_EQ(samples_per_dataset({0.1, 0.9}, 7, kMidLevelDatasetSurplus), (std::vector<int64_t>{2, 8}));
}

TEST(MegatronBlend, EachSampleFromTheDatasetThatLagsItsWeightMost) {
  // Weights 1/4, 3/4: sample 0 (taken as 1) errors 0.25, 0.75 -> 1; sample 1: 0.25, -0.25 -> 0;
  // sample 2: 0.5 - 1, 1.5 - 1 -> 1; sample 3: 0.75 - 1, 2.25 - 2 -> 1.
  auto blend = blending_index({0.25, 0.75}, 4);
  EXPECT_EQ(blend.dataset, (std::vector<int16_t>{1, 0, 1, 1}));
  EXPECT_EQ(blend.sample, (std::vector<int64_t>{0, 0, 1, 2}));
  // Ties go to the first dataset.
  blend = blending_index({0.5, 0.5}, 4);
  EXPECT_EQ(blend.dataset, (std::vector<int16_t>{0, 1, 0, 1}));
  EXPECT_EQ(blend.sample, (std::vector<int64_t>{0, 0, 1, 1}));
}

TEST(MegatronBlend, ExhaustiveBlendTakesEverySampleOnce) {
  // Sizes 1 and 3: dataset 1 first (0.75 > 0.25), then 0 (0.25 > -0.25) and it is spent.
  const auto blend = exhaustive_blending_index({1, 3});
  EXPECT_EQ(blend.dataset, (std::vector<int16_t>{1, 0, 1, 1}));
  EXPECT_EQ(blend.sample, (std::vector<int64_t>{0, 0, 1, 2}));
}

}  // namespace
}  // namespace strata::train
