#pragma once
// Starts the ranks of a parallel run on this machine (what `strata train --nproc N` and the
// multi-rank tests do): hosts the rendezvous store, starts N copies of a program with the
// environment rendezvous_options_from_env() reads (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, STRATA_STORE_HOSTED, STRATA_LAUNCHER_PID, STRATA_DIST_TIMEOUT_S) and waits for all
// of them.
//
// The launcher holds the store so that it outlives any rank: when one dies, the others can
// still read who is alive and name it in their errors. Ranks are expected to fail on their own
// within the timeout when a peer dies; whatever still runs `grace` after the first failure is
// killed, and said so.
//
// Lifecycle: each rank runs in a session of its own; SIGTERM, SIGINT and SIGHUP sent to the
// launcher are forwarded to every running rank while the launcher keeps waiting (so the ranks can
// save a checkpoint and stop); a rank dies with the launcher (STRATA_LAUNCHER_PID: the rank asks
// the kernel for SIGKILL when its parent exits, so a kill -9 of the launcher leaves no rank behind).
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace strata::parallel {

struct LaunchOptions {
  int nproc = 1;
  std::vector<std::string> argv;  // argv[0]: the program (a path); the rest: its arguments
  std::map<std::string, std::string> env;  // set for every rank, on top of this process's environment
  std::chrono::milliseconds timeout = std::chrono::minutes(10);  // the ranks' rendezvous and collective timeout
  std::optional<std::chrono::milliseconds> grace;  // default: timeout + 30 s
  std::string log_dir;  // when set, rank r writes stdout and stderr to log_dir/rank<r>.log
};

struct RankExit {
  int rank = 0;
  bool signaled = false;  // killed by a signal (code is the signal)
  int code = 0;
  bool killed_by_launcher = false;
  bool ok() const { return !signaled && code == 0; }
  int exit_code() const;  // as a shell reports it: the code, or 128 + the signal
  std::string describe() const;  // "rank 1 exited with code 3", "rank 2 was killed by signal 9 (Killed)"
};

// Returns every rank's exit, by rank. Errors only for what keeps ranks from starting.
std::vector<RankExit> launch_ranks(const LaunchOptions& options);

// The path of the running program (to start more copies of it).
std::string current_executable();

}  // namespace strata::parallel
