#include "strata/train/gpt_samples.h"

#include <gtest/gtest.h>

#include "strata/train/numpy_random_state.h"
#include "strata/train/numpy_sum.h"

namespace strata::train {
namespace {

TEST(NumpyRandomState, ShufflesAsNumpysRandomStateDoes) {
  // numpy 1.24: r = numpy.random.RandomState(1234); a = numpy.arange(10); r.shuffle(a)
  NumpyRandomState random(1234);
  std::vector<int32_t> values = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  random.shuffle(values);
  EXPECT_EQ(values, (std::vector<int32_t>{7, 2, 9, 1, 0, 8, 4, 5, 6, 3}));
  // The state carries on: seed 0 shuffles [0, 1, 2] to [2, 1, 0], then [0, 1, 2] to [2, 0, 1].
  NumpyRandomState zero(0);
  std::vector<int64_t> first = {0, 1, 2}, second = {0, 1, 2};
  zero.shuffle(first);
  zero.shuffle(second);
  EXPECT_EQ(first, (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(second, (std::vector<int64_t>{2, 0, 1}));
}

TEST(NumpySum, AddsPairwiseAsNumpyDoes) {
  // numpy.sum([0.1] * 10) is 1.0; adding left to right gives 0.9999999999999999.
  const std::vector<double> tenths(10, 0.1);
  EXPECT_EQ(numpy_sum(tenths), 1.0);
  double left_to_right = 0.0;
  for (const auto v : tenths) left_to_right += v;
  EXPECT_NE(left_to_right, 1.0);
  // Below eight values numpy adds left to right: 1e16 + 1 - 1e16 + 1 is 1.
  EXPECT_EQ(numpy_sum({1e16, 1.0, -1e16, 1.0}), 1.0);
}

// Sequences of 3, 5 and 2 tokens, samples of seq_length 3 (+ 1), seed 0: the document order is
// [2, 1, 0], so the epoch reads seq2[0:2] seq1[0:5] seq0[0:3], ten tokens; samples start every
// three tokens and take four, (10 - 1) / 3 = 3 of them; the shuffle index is [2, 0, 1].
TEST(GptSamples, HandBuiltEpoch) {
  const std::vector<int32_t> lengths = {3, 5, 2};
  GptSamples samples(lengths, 0, 3, 3, std::nullopt, 0);
  EXPECT_EQ(samples.tokens_per_epoch(), 10u);
  EXPECT_EQ(samples.num_epochs(), 1);
  EXPECT_EQ(samples.document_index(), (std::vector<int32_t>{2, 1, 0}));
  EXPECT_EQ(samples.sample_index(), (std::vector<int64_t>{0, 0, 1, 1, 1, 4, 2, 2}));
  EXPECT_EQ(samples.shuffle_index(), (std::vector<int64_t>{2, 0, 1}));
  ASSERT_EQ(samples.size(), 3);
  EXPECT_EQ(samples.pieces(0), (std::vector<SamplePiece>{{1, 4, 1}, {0, 0, 3}}));
  EXPECT_EQ(samples.pieces(1), (std::vector<SamplePiece>{{2, 0, 2}, {1, 0, 2}}));
  EXPECT_EQ(samples.pieces(2), (std::vector<SamplePiece>{{1, 1, 4}}));
}

TEST(GptSamples, EpochsAreAsManyAsTheSampleCountNeeds) {
  const std::vector<int32_t> lengths = {3, 5, 2};
  // 7 samples of 3 (+ 1) tokens need 22 tokens: three epochs of 10. The third is needed for
  // 7 - 6 = 1 sample, under 80 % of an epoch's 3: it is shuffled apart, last.
  GptSamples samples(lengths, 0, 3, 3, 7, 0);
  EXPECT_EQ(samples.num_epochs(), 3);
  EXPECT_EQ(samples.size(), (3 * 10 - 1) / 3);
  const auto& documents = samples.document_index();
  ASSERT_EQ(documents.size(), 9u);
  std::vector<int32_t> last(documents.end() - 3, documents.end());
  std::sort(last.begin(), last.end());
  EXPECT_EQ(last, (std::vector<int32_t>{0, 1, 2}));  // the final epoch on its own
  std::vector<int64_t> first(samples.shuffle_index().begin(), samples.shuffle_index().begin() + 6);
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));  // samples of the first two epochs first
}

TEST(GptSamples, ASplitOfOneTokenHasNoSample) {
  const std::vector<int32_t> lengths = {1, 5};
  EXPECT_EQ(GptSamples(lengths, 0, 1, 3, 100, 0).size(), 0);
  EXPECT_EQ(GptSamples(lengths, 1, 1, 3, std::nullopt, 0).size(), 0);
  EXPECT_EQ(GptSamples(lengths, 1, 2, 3, std::nullopt, 0).size(), 1);  // (5 - 1) / 3
}

}  // namespace
}  // namespace strata::train
