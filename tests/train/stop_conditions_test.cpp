// Stop conditions at step boundaries: signals, --exit-interval, --exit-duration-in-mins, and the
// agreement of the ranks of a parallel run.
#include "strata/train/stop_conditions.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "parallel/rank_harness.h"
#include "strata/core/error.h"
#include "strata/parallel/collectives.h"
#include "strata/train/trainer.h"

namespace strata::train {
namespace {

const parallel::Group kSingleProcess;  // no world group

TrainOptions stop_options(double minutes = 0.0, int64_t interval = 0) {
  TrainOptions o;
  o.exit_duration_in_mins = minutes;
  o.exit_interval = interval;
  return o;
}

void (*disposition(int signal))(int) {
  struct sigaction current {};
  ::sigaction(signal, nullptr, &current);
  return current.sa_handler;
}

// Every test starts with the default actions, however the test binary was started (a background
// job of a script starts with SIGINT ignored), and leaves the actions it found.
class StopConditionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::sigaction(SIGTERM, nullptr, &term_);
    ::sigaction(SIGINT, nullptr, &int_);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
  }
  void TearDown() override {
    ::sigaction(SIGTERM, &term_, nullptr);
    ::sigaction(SIGINT, &int_, nullptr);
  }

 private:
  struct sigaction term_ {}, int_ {};
};

TEST_F(StopConditionsTest, NothingHoldsWithoutASignalOrFlag) {
  StopConditions conditions(stop_options(), kSingleProcess);
  const auto stop = conditions.check(5);
  EXPECT_FALSE(stop.stopped());
  EXPECT_EQ(stop.exit_code(), 0);
}

TEST_F(StopConditionsTest, SigtermStopsWithExitCode143) {
  StopConditions conditions(stop_options(), kSingleProcess);
  ::raise(SIGTERM);
  ::raise(SIGTERM);  // a second SIGTERM changes nothing
  const auto stop = conditions.check(3);
  EXPECT_EQ(stop.reason, StopReason::signal);
  EXPECT_EQ(stop.signal, SIGTERM);
  EXPECT_EQ(stop.iteration, 3);
  EXPECT_EQ(stop.exit_code(), 143);
  EXPECT_EQ(stop.describe("runs/a"), "stopped after iteration 3 on SIGTERM: checkpoint saved to runs/a");
  EXPECT_EQ(stop.describe(""), "stopped after iteration 3 on SIGTERM: no --save, nothing saved");
}

TEST_F(StopConditionsTest, SigintStopsWithExitCode130) {
  StopConditions conditions(stop_options(), kSingleProcess);
  ::raise(SIGINT);
  const auto stop = conditions.check(1);
  EXPECT_EQ(stop.signal, SIGINT);
  EXPECT_EQ(stop.exit_code(), 130);
}

TEST_F(StopConditionsTest, ASecondSigintKills) {
  EXPECT_EXIT(
      {
        StopConditions conditions(stop_options(), kSingleProcess);
        ::raise(SIGINT);
        ::raise(SIGINT);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGINT), "");
}

TEST_F(StopConditionsTest, HandlersComeAndGoWithTheConditions) {
  {
    StopConditions conditions(stop_options(), kSingleProcess);
    EXPECT_NE(disposition(SIGTERM), SIG_DFL);
    EXPECT_NE(disposition(SIGINT), SIG_DFL);
  }
  EXPECT_EQ(disposition(SIGTERM), SIG_DFL);
  EXPECT_EQ(disposition(SIGINT), SIG_DFL);
  auto off = stop_options();
  off.exit_signal_handler = false;
  StopConditions conditions(off, kSingleProcess);
  EXPECT_EQ(disposition(SIGTERM), SIG_DFL);
}

TEST_F(StopConditionsTest, AnIgnoredSignalStaysIgnored) {
  ::signal(SIGINT, SIG_IGN);
  {
    StopConditions conditions(stop_options(), kSingleProcess);
    EXPECT_EQ(disposition(SIGINT), SIG_IGN);
    ::raise(SIGINT);
    EXPECT_FALSE(conditions.check(1).stopped());
  }
  EXPECT_EQ(disposition(SIGINT), SIG_IGN);
}

TEST_F(StopConditionsTest, ExitIntervalStopsAtItsMultiples) {
  StopConditions conditions(stop_options(0.0, 4), kSingleProcess);
  EXPECT_FALSE(conditions.check(3).stopped());
  const auto stop = conditions.check(8);
  EXPECT_EQ(stop.reason, StopReason::interval);
  EXPECT_EQ(stop.exit_code(), 0);
  EXPECT_EQ(stop.describe("d"), "stopped after iteration 8 at a multiple of --exit-interval 4: checkpoint saved to d");
}

TEST_F(StopConditionsTest, ExitDurationStopsOnceTheTimeHasPassed) {
  StopConditions conditions(stop_options(0.002), kSingleProcess);  // 120 ms
  EXPECT_FALSE(conditions.check(1).stopped());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto stop = conditions.check(2);
  EXPECT_EQ(stop.reason, StopReason::duration);
  EXPECT_GT(stop.minutes, 0.002);
  EXPECT_LT(stop.minutes, 0.01);
  EXPECT_EQ(stop.exit_code(), 0);
  EXPECT_NE(stop.describe("d").find("minutes of training (--exit-duration-in-mins 0.002): checkpoint saved to d"),
            std::string::npos)
      << stop.describe("d");
}

TEST_F(StopConditionsTest, ASignalWinsOverTheFlags) {
  StopConditions conditions(stop_options(0.0, 1), kSingleProcess);
  ::raise(SIGTERM);
  EXPECT_EQ(conditions.check(1).reason, StopReason::signal);
}

TEST_F(StopConditionsTest, NegativeFlagsAreRefused) {
  EXPECT_THROW(
      {
        try {
          StopConditions conditions(stop_options(-1.0), kSingleProcess);
        } catch (const Error& e) {
          EXPECT_STREQ(e.what(), "--exit-duration-in-mins -1: expected a non-negative duration (0: no limit)");
          throw;
        }
      },
      Error);
  EXPECT_THROW(StopConditions(stop_options(0.0, -2), kSingleProcess), Error);
}

// A signal that reached one rank stops both after the same iteration.
TEST_F(StopConditionsTest, RanksAgreeOnASignalOnlyOneReceived) {
  testing::run_ranks(2, [](parallel::World& world) {
    StopConditions conditions(stop_options(), world.world_group());
    EXPECT_FALSE(conditions.check(1).stopped());
    if (world.rank() == 1) ::raise(SIGTERM);
    const auto stop = conditions.check(2);
    EXPECT_EQ(stop.reason, StopReason::signal);
    EXPECT_EQ(stop.signal, SIGTERM);
    EXPECT_EQ(stop.exit_code(), 143);
  });
}

// Rank 1's clock passes the limit first, but rank 0's decides, for both ranks.
TEST_F(StopConditionsTest, RankZerosClockDecidesTheDuration) {
  testing::run_ranks(2, [](parallel::World& world) {
    std::optional<StopConditions> conditions;
    if (world.rank() == 1) {
      conditions.emplace(stop_options(0.003), world.world_group());  // 180 ms
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
    }
    parallel::barrier(world.world_group(), "test barrier");
    if (world.rank() == 0) conditions.emplace(stop_options(0.003), world.world_group());
    EXPECT_FALSE(conditions->check(1).stopped());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto stop = conditions->check(2);
    EXPECT_EQ(stop.reason, StopReason::duration);
    EXPECT_LT(stop.minutes, 0.009);  // rank 0's time (about 0.005 minutes), not rank 1's (about 0.012)
  });
}

}  // namespace
}  // namespace strata::train
