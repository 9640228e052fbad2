// The indexers' top-k rule (top_k_selection.h): the k highest scores, ties at the k-th score to
// the lowest indices, the same on every device (STRATA_TEST_DEVICE=cuda runs it on the GPU too),
// and the reference tie order (libtorch's CPU at::topk) for comparisons with HF's fixtures.
#include "strata/layers/top_k_selection.h"

#include <gtest/gtest.h>

#include <limits>

#include "test_util.h"

namespace strata {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

at::Tensor row(std::initializer_list<float> values) { return at::tensor(std::vector<float>(values)); }
at::Tensor positions(std::initializer_list<int64_t> values) { return at::tensor(std::vector<int64_t>(values)); }

TEST(TopKSelection, TiesAtTheKthScoreGoToTheLowestIndices) {
  const auto device = testing::test_device();
  // Sorted: 5 3 2 | 0 0 0 0 -1. The three above 0 and the first of the four zeros (index 1).
  auto scores = row({3, 0, 5, 0, 0, -1, 0, 2}).to(device);
  EXPECT_TRUE(at::equal(top_k_positions(scores, 4).cpu(), positions({0, 1, 2, 7})));
  EXPECT_TRUE(at::equal(top_k_mask(scores, 4).cpu(), row({1, 1, 1, 0, 0, 0, 0, 1}).to(at::kBool)));
  // Five: two of the zeros.
  EXPECT_TRUE(at::equal(top_k_positions(scores, 5).cpu(), positions({0, 1, 2, 3, 7})));
  // No tie at the k-th place: plain top-k.
  EXPECT_TRUE(at::equal(top_k_positions(scores, 3).cpu(), positions({0, 2, 7})));
}

TEST(TopKSelection, MaskedEntriesTieAtMinusInfinityAndKIsCappedByTheRow) {
  const auto device = testing::test_device();
  // One finite score: it and the lowest two of the masked ones.
  auto scores = row({-kInf, 1, -kInf, -kInf}).to(device);
  EXPECT_TRUE(at::equal(top_k_positions(scores, 3).cpu(), positions({0, 1, 2})));
  EXPECT_TRUE(at::equal(top_k_positions(scores, 9).cpu(), positions({0, 1, 2, 3})));
  EXPECT_EQ(top_k_mask(scores, 0).sum().item<int64_t>(), 0);
  EXPECT_EQ(top_k_mask(at::zeros({2, 0}, device), 4).sizes(), (at::IntArrayRef{2, 0}));
}

// Scores shaped as the indexers': ReLU(heads) weighed, so about a quarter exactly 0, and rows
// with a masked future. The rule equals a stable descending sort's first k (the lowest index
// first among equals), and the GPU picks exactly what the CPU picks.
TEST(TopKSelection, EqualsAStableSortAndIsTheSameOnEveryDevice) {
  at::manual_seed(5);
  const int64_t B = 2, T = 64, S = 300, k = 16;
  auto per_head = at::relu(at::randn({B, T, 2, S}));
  auto scores = (per_head * at::randn({B, T, 2, 1})).sum(2);
  // The second sequence's query t sees t - 39 entries: fewer than k up to t = 54.
  scores[1].masked_fill_(at::ones({T, S}, at::kBool).tril(-40).logical_not(), -kInf);
  ASSERT_GT(scores.eq(0).sum().item<int64_t>(), T * S / 8);

  auto expected = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/-1, /*descending=*/true)).narrow(-1, 0, k);
  expected = std::get<0>(at::sort(expected, -1));
  auto cpu = top_k_positions(scores, k);
  EXPECT_TRUE(at::equal(cpu, expected));
  EXPECT_TRUE(at::equal(top_k_mask(scores, k), at::zeros_like(scores, at::kBool).scatter(-1, expected, true)));
  // Ties straddle the k-th place in many rows, so at::topk's own choice could differ.
  auto kth = std::get<0>(at::topk(scores, k, -1)).narrow(-1, k - 1, 1);
  EXPECT_GT(((scores > kth).sum(-1) + (scores == kth).sum(-1) > k).sum().item<int64_t>(), 10);

  const auto device = testing::test_device();
  EXPECT_TRUE(at::equal(top_k_positions(scores.to(device), k).cpu(), cpu));
  EXPECT_TRUE(at::equal(top_k_mask(scores.to(device), k).cpu(), top_k_mask(scores, k)));
}

TEST(TopKSelection, TheReferenceTieOrderIsTheCpuTopKOnEveryDevice) {
  at::manual_seed(6);
  auto scores = at::relu(at::randn({3, 40, 50}) - 1.2);  // about 6 positive scores a row, the rest 0
  auto cpu_topk = std::get<1>(at::topk(scores, 8, -1));
  const auto device = testing::test_device();
  {
    ReferenceTopKTieOrder reference;
    EXPECT_EQ(ReferenceTopKTieOrder::active(), at::Device(at::kCPU));
    EXPECT_TRUE(at::equal(top_k_positions(scores.to(device), 8).cpu(), cpu_topk));
    EXPECT_TRUE(at::equal(top_k_mask(scores.to(device), 8).cpu(),
                          at::zeros_like(scores, at::kBool).scatter(-1, cpu_topk, true)));
  }
  EXPECT_FALSE(ReferenceTopKTieOrder::active().has_value());
  // The choices differ, though both keep the 8 highest scores.
  EXPECT_FALSE(at::equal(top_k_mask(scores, 8), at::zeros_like(scores, at::kBool).scatter(-1, cpu_topk, true)));
}

}  // namespace
}  // namespace strata
