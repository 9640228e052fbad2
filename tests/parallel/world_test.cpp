// Process groups, collectives and failure handling over Gloo on loopback, 2-3 ranks.
#include <gtest/gtest.h>

#include <thread>

#include "parallel/rank_harness.h"
#include "strata/core/error.h"
#include "strata/parallel/collectives.h"
#include "strata/parallel/layout.h"

namespace strata {
namespace {

using parallel::ParallelLayout;
using testing::run_rank_processes;
using testing::run_ranks;

// Megatron's order, worked by hand for 8 ranks, tp 2, pp 2 (so dp 2), ep 2:
// rank = tp + 2 * (dp + 2 * pp).
TEST(ParallelLayout, GroupsFollowMegatronRankOrder) {
  const ParallelLayout layout{.tensor_parallel = 2, .pipeline_parallel = 2, .expert_parallel = 2};
  EXPECT_EQ(parallel::data_parallel_size(layout, 8), 2);
  const auto at5 = parallel::coordinates(5, layout, 8);
  EXPECT_EQ(at5.tp, 1);
  EXPECT_EQ(at5.dp, 0);
  EXPECT_EQ(at5.pp, 1);
  const auto g = parallel::group_ranks(5, layout, 8);
  EXPECT_EQ(g.tp, (std::vector<int>{4, 5}));
  EXPECT_EQ(g.dp, (std::vector<int>{5, 7}));
  EXPECT_EQ(g.pp, (std::vector<int>{1, 5}));
  EXPECT_EQ(g.ep, (std::vector<int>{5, 7}));
  EXPECT_EQ(g.expert_dp, (std::vector<int>{5}));
  for (int r = 0; r < 8; ++r) EXPECT_EQ(parallel::global_rank(parallel::coordinates(r, layout, 8), layout, 8), r);
}

TEST(ParallelLayout, SizesThatDoNotDivideAreNamed) {
  try {
    parallel::data_parallel_size({.tensor_parallel = 3}, 4);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("world size 4 is not a multiple of tensor-parallel size 3"), std::string::npos)
        << e.what();
  }
  try {
    parallel::data_parallel_size({.expert_parallel = 3}, 4);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expert-parallel size 3 must divide the data-parallel size 4"),
              std::string::npos)
        << e.what();
  }
}

// Each rank's input is a known function of its rank, so every rank can compute what every
// collective must return.
at::Tensor input_of(int rank) { return at::arange(6, at::kFloat).reshape({2, 3}) + 10.0 * rank; }

TEST(Collectives, MatchTheirDefinitionsOnThreeRanks) {
  run_ranks(3, [](parallel::World& world) {
    const auto& group = world.world_group();
    const int me = world.rank();
    const auto mine = input_of(me);
    const auto all = std::vector<at::Tensor>{input_of(0), input_of(1), input_of(2)};

    auto sum = mine.clone();
    parallel::all_reduce_sum_(sum, group, "test all-reduce");
    EXPECT_TRUE(at::equal(sum, all[0] + all[1] + all[2]));

    EXPECT_TRUE(at::equal(parallel::all_gather(mine, group, 1, "test all-gather"), at::cat(all, 1)));

    auto stacked = at::cat({mine, mine, mine}, 0);  // [6, 3]: each rank keeps 2 rows of the sum
    auto scattered = parallel::reduce_scatter_sum(stacked, group, 0, "test reduce-scatter");
    EXPECT_TRUE(at::equal(scattered, all[0] + all[1] + all[2]));

    // Rank r sends (r + 1) rows of value 100 r + d to rank d.
    std::vector<at::Tensor> outgoing;
    std::vector<int64_t> send(3), recv(3);
    for (int d = 0; d < 3; ++d) {
      outgoing.push_back(at::full({me + 1, 2}, 100.0 * me + d));
      send[d] = me + 1;
      recv[d] = d + 1;
    }
    auto received = parallel::all_to_all(at::cat(outgoing), send, recv, group, "test all-to-all");
    std::vector<at::Tensor> expected;
    for (int s = 0; s < 3; ++s) expected.push_back(at::full({s + 1, 2}, 100.0 * s + me));
    EXPECT_TRUE(at::equal(received, at::cat(expected)));

    auto root = me == 2 ? mine.clone() : at::zeros_like(mine);
    parallel::broadcast_(root, 2, group, "test broadcast");
    EXPECT_TRUE(at::equal(root, all[2]));

    auto texts = parallel::all_gather_strings(std::string(me + 1, static_cast<char>('a' + me)), group, "test strings");
    EXPECT_EQ(texts, (std::vector<std::string>{"a", "bb", "ccc"}));

    if (me == 0) parallel::send_async(mine, 1, 7, group, "test send").wait();
    if (me == 1) {
      auto got = at::empty_like(mine);
      parallel::recv_(got, 0, 7, group, "test receive");
      EXPECT_TRUE(at::equal(got, all[0]));
    }
  });
}

TEST(Collectives, SubgroupsOnlyTalkAmongTheirMembers) {
  run_ranks(3, [](parallel::World& world) {
    // Ranks 0 and 2 form a group; rank 1 is not in it and never touches it.
    if (world.rank() == 1) return;
    auto group = world.new_group("pair", {0, 2});
    EXPECT_EQ(group->getSize(), 2);
    EXPECT_EQ(group->getRank(), world.rank() / 2);
    auto t = at::full({1}, static_cast<double>(world.rank()));
    parallel::all_reduce_sum_(t, group, "test pair all-reduce");
    EXPECT_EQ(t.item<double>(), 2.0);
    EXPECT_EQ(world.describe(group.get()), "the pair group (ranks 0, 2)");
  });
}

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Rank 2 dies once every rank is connected; the others' next all-reduce fails, well inside the
// timeout, with an error that names rank 2. (A first all-reduce by all three orders the death
// after every rank's rendezvous: rank 2's own rendezvous can return while another rank is still
// making the world group, which then fails there instead, as seen once in a full ctest.)
TEST(FailureHandling, EverySurvivorNamesTheRankThatDied) {
  const auto timeout = std::chrono::seconds(60);
  auto exits = run_rank_processes(
      3,
      [&](const parallel::RendezvousOptions& options) {
        auto world = parallel::World::rendezvous(options);
        auto connected = at::ones({1});
        parallel::all_reduce_sum_(connected, world->world_group(), "all ranks connected");
        EXPECT_EQ(connected.item<float>(), 3.0f);
        if (world->rank() == 2) std::_Exit(3);
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        const auto start = std::chrono::steady_clock::now();
        auto t = at::ones({4});
        const auto error = message_of([&] { parallel::all_reduce_sum_(t, world->world_group(), "gradient all-reduce"); });
        const auto waited = std::chrono::steady_clock::now() - start;
        EXPECT_NE(error.find(cat("rank ", world->rank(), ": gradient all-reduce over the world group (ranks 0, 1, 2) failed")),
                  std::string::npos)
            << error;
        EXPECT_NE(error.find("rank 2 stopped responding (it exited or hangs)"), std::string::npos) << error;
        EXPECT_LT(waited, std::chrono::seconds(20));
      },
      timeout);
  if (testing::in_rank_process()) return;
  ASSERT_EQ(exits.size(), 3u);
  EXPECT_TRUE(exits[0].ok()) << exits[0].describe();
  EXPECT_TRUE(exits[1].ok()) << exits[1].describe();
  EXPECT_EQ(exits[2].code, 3) << exits[2].describe();
}

// Rank 1 is alive but never joins the collective: rank 0 gives up after the timeout and says
// that the others are alive.
TEST(FailureHandling, ACollectiveTimesOutWhenAPeerHangs) {
  auto exits = run_rank_processes(
      2,
      [&](parallel::RendezvousOptions options) {
        options.timeout = std::chrono::seconds(3);
        auto world = parallel::World::rendezvous(options);
        if (world->rank() == 1) {
          std::this_thread::sleep_for(std::chrono::seconds(8));
          std::_Exit(0);
        }
        const auto start = std::chrono::steady_clock::now();
        auto t = at::ones({4});
        const auto error = message_of([&] { parallel::all_reduce_sum_(t, world->world_group(), "loss all-reduce"); });
        const auto waited = std::chrono::steady_clock::now() - start;
        EXPECT_NE(error.find("rank 0: loss all-reduce over the world group (ranks 0, 1) failed"), std::string::npos) << error;
        EXPECT_NE(error.find("every other rank is alive"), std::string::npos) << error;
        EXPECT_GE(waited, std::chrono::seconds(3));
        EXPECT_LT(waited, std::chrono::seconds(7));
        std::_Exit(::testing::Test::HasFailure() ? 1 : 0);
      },
      std::chrono::seconds(30));
  for (const auto& e : exits) EXPECT_TRUE(e.ok()) << e.describe();
}

// Three ranks are expected, two come: both fail after the timeout, naming rank 2.
TEST(FailureHandling, RendezvousTimeoutNamesTheMissingRanks) {
  auto exits = run_rank_processes(
      3,
      [&](parallel::RendezvousOptions options) {
        if (options.rank == 2) return;  // never joins
        options.timeout = std::chrono::seconds(2);
        const auto error = message_of([&] { parallel::World::rendezvous(options); });
        EXPECT_NE(error.find(cat("rank ", options.rank, ": rendezvous at 127.0.0.1:")), std::string::npos) << error;
        EXPECT_NE(error.find("timed out after 2 s: rank 2 of 3 never arrived"), std::string::npos) << error;
      },
      std::chrono::seconds(30));
  for (const auto& e : exits) EXPECT_TRUE(e.ok()) << e.describe();
}

}  // namespace
}  // namespace strata
