#pragma once
// The command line's view of a parallel run (`strata train --nproc N ...`): the process started
// by the user launches N ranks of the same command and reports how they ended; each rank (or a
// process started by torchrun-style tooling with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)
// joins the rendezvous and builds its process groups.
#include <chrono>
#include <memory>
#include <optional>

#include "strata/parallel/layout.h"
#include "strata/parallel/world.h"

namespace strata::parallel {

struct ParallelRun {
  std::shared_ptr<World> world;
  ProcessGroups groups;
  int local_rank = 0;  // LOCAL_RANK: which GPU of this machine the rank uses
  bool logs() const { return world->rank() == 0; }  // one rank prints progress and results
};

// Joins the run the environment describes (RANK set), or nullopt for a single process; a layout
// other than all ones without ranks is an error that says how to start them.
std::optional<ParallelRun> join_parallel_run(const ParallelLayout& layout, CommBackend backend,
                                             std::chrono::milliseconds timeout);

// Refuses an --nproc this machine cannot run: below 1, above one rank per visible GPU with nccl,
// above 4 ranks per usable CPU core with gloo. Errors name the value and the bound.
void check_nproc(int nproc, CommBackend backend);
// Whether this process should launch ranks instead of training: nproc > 1 and no RANK set.
bool should_launch(int nproc);
// Starts nproc ranks running this process's own command line, waits, prints how any rank that
// failed ended, and returns the exit code for this process: the ranks' own when they all agree
// (0 when every rank succeeded, 143 when every rank stopped on a SIGTERM), else 1.
int launch_this_command(int nproc, std::chrono::milliseconds timeout);

}  // namespace strata::parallel
