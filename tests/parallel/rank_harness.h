#pragma once
// Multi-rank tests: a test runs its body on N ranks, each a separate process on loopback Gloo.
// The test binary starts N copies of itself running only the current test (through
// parallel::launch_ranks, which hosts the rendezvous store and sets RANK etc.); in a copy the
// same test sees RANK set and runs the body for its rank. A rank's failed assertions fail its
// process, which fails the test in the parent, which then prints that rank's output.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "strata/parallel/launcher.h"
#include "strata/parallel/world.h"

namespace strata::testing {

// Whether this process is one of the ranks a test started (rather than the test itself).
inline bool in_rank_process() { return std::getenv("RANK") != nullptr; }

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// In the test: starts nproc ranks and returns their exits (the caller checks them). In a rank:
// runs body with the rendezvous options from the environment, then returns an empty vector
// (checks of the exits must be skipped there: see in_rank_process).
inline std::vector<parallel::RankExit> run_rank_processes(
    int nproc, const std::function<void(const parallel::RendezvousOptions&)>& body,
    std::chrono::seconds timeout = std::chrono::seconds(60)) {
  if (in_rank_process()) {
    body(*parallel::rendezvous_options_from_env());
    return {};
  }
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = std::string(test->test_suite_name()) + "." + test->name();
  const auto logs = std::filesystem::temp_directory_path() /
                    ("strata_ranks_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(logs);
  parallel::LaunchOptions options{
      .nproc = nproc,
      .argv = {parallel::current_executable(), "--gtest_filter=" + name, "--gtest_brief=1"},
      .env = {{"OMP_NUM_THREADS", "1"}},
      .timeout = timeout,
      .grace = timeout + std::chrono::seconds(10),
      .log_dir = logs.string(),
  };
  auto exits = parallel::launch_ranks(options);
  for (const auto& e : exits) {
    if (e.ok()) continue;
    std::cerr << "---- " << e.describe() << "; its output:\n"
              << read_text(logs / ("rank" + std::to_string(e.rank) + ".log")) << "----\n";
  }
  std::filesystem::remove_all(logs);
  return exits;
}

// The usual case: every rank joins the world, runs body, and must exit cleanly.
inline void run_ranks(int nproc, const std::function<void(parallel::World&)>& body,
                      std::chrono::seconds timeout = std::chrono::seconds(60)) {
  auto exits = run_rank_processes(
      nproc,
      [&](const parallel::RendezvousOptions& options) {
        auto world = parallel::World::rendezvous(options);
        body(*world);
      },
      timeout);
  for (const auto& e : exits) EXPECT_TRUE(e.ok()) << e.describe();
}

}  // namespace strata::testing
