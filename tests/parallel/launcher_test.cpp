// The launcher's part in a run's lifecycle: signals it receives reach every rank and it waits for
// them; a rank whose launcher is gone refuses to join; --nproc is checked against the machine.
#include "strata/parallel/launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "strata/core/error.h"
#include "strata/parallel/run.h"
#include "strata/parallel/world.h"

namespace strata::parallel {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Two shell ranks that exit 7 a moment after SIGTERM: the launcher forwards the SIGTERM this
// process receives and returns their own exits.
TEST(Launcher, ForwardsSigtermToEveryRankAndWaitsForThem) {
  const auto dir = fs::temp_directory_path() / ("strata_forward_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::thread sender([&] {
    // Ready files appear once each rank's trap is set, long after the launcher's handler is.
    for (int i = 0; i < 400 && !(fs::exists(dir / "ready0") && fs::exists(dir / "ready1")); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    ::kill(::getpid(), SIGTERM);
  });
  const auto exits = launch_ranks({
      .nproc = 2,
      .argv = {"/bin/sh", "-c",
               "trap 'sleep 0.3; exit 7' TERM; touch \"$DIR/ready$RANK\"; while :; do sleep 0.05; done"},
      .env = {{"DIR", dir.string()}},
      .timeout = std::chrono::seconds(20),
  });
  sender.join();
  fs::remove_all(dir);
  ASSERT_EQ(exits.size(), 2u);
  for (const auto& e : exits) {
    EXPECT_FALSE(e.signaled) << e.describe();
    EXPECT_EQ(e.code, 7) << e.describe();
    EXPECT_FALSE(e.killed_by_launcher) << e.describe();
  }
}

TEST(Launcher, ExitCodesReadAsAShellReportsThem) {
  EXPECT_EQ((RankExit{.rank = 0, .signaled = false, .code = 143}).exit_code(), 143);
  EXPECT_EQ((RankExit{.rank = 1, .signaled = true, .code = SIGINT}).exit_code(), 130);
}

// The kernel's parent-death signal alone would never come to a rank whose launcher died before
// the rank asked for it: such a rank refuses to join. (In a child process: the request outlives
// the test.)
TEST(Launcher, ARankWhoseLauncherIsGoneRefusesToJoin) {
  EXPECT_EXIT(
      {
        RendezvousOptions options;
        options.launcher_pid = ::getppid() + 100000;  // not this process's parent
        std::fprintf(stderr, "%s", error_of([&] { World::rendezvous(options); }).c_str());
        std::_Exit(3);
      },
      ::testing::ExitedWithCode(3), "rank 0: the launcher \\(pid [0-9]+\\) that started this rank has already exited");
}

TEST(Launcher, NprocOutsideTheMachineIsRefused) {
  EXPECT_EQ(error_of([] { check_nproc(0, CommBackend::gloo); }), "--nproc 0: expected at least 1 process");
  EXPECT_EQ(error_of([] { check_nproc(-1, CommBackend::gloo); }), "--nproc -1: expected at least 1 process");
  EXPECT_NE(error_of([] { check_nproc(100000, CommBackend::gloo); }).find("--nproc 100000: at most "),
            std::string::npos);
  EXPECT_EQ(error_of([] { check_nproc(1, CommBackend::nccl); }), "");  // one process launches nothing
  EXPECT_EQ(error_of([] { check_nproc(2, CommBackend::gloo); }), "");
}

}  // namespace
}  // namespace strata::parallel
