#include "strata/parallel/run.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "strata/core/error.h"
#include "strata/parallel/launcher.h"

#ifdef STRATA_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace strata::parallel {

namespace {

// argv of this process, as the kernel recorded it.
std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t start = 0; start < text.size();) {
    const auto end = text.find('\0', start);
    args.push_back(text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (args.empty()) fail("launcher: cannot read this process's command line from /proc/self/cmdline");
  args[0] = current_executable();
  return args;
}

}  // namespace

bool should_launch(int nproc) { return nproc > 1 && !std::getenv("RANK"); }

int launch_this_command(int nproc, std::chrono::milliseconds timeout) {
  std::printf("launching %d ranks on this machine\n", nproc);
  std::fflush(stdout);
  const auto exits = launch_ranks({.nproc = nproc, .argv = own_command_line(), .timeout = timeout});
  int failed = 0;
  for (const auto& e : exits) {
    if (e.ok()) continue;
    std::fprintf(stderr, "strata: %s\n", e.describe().c_str());
    ++failed;
  }
  if (failed) std::fprintf(stderr, "strata: %d of %d ranks failed\n", failed, nproc);
  return failed ? 1 : 0;
}

std::optional<ParallelRun> join_parallel_run(const ParallelLayout& layout, CommBackend backend,
                                             std::chrono::milliseconds timeout) {
  auto options = rendezvous_options_from_env();
  if (!options) {
    if (layout.tensor_parallel * layout.pipeline_parallel * layout.expert_parallel > 1)
      fail("tensor-parallel ", layout.tensor_parallel, " x pipeline-parallel ", layout.pipeline_parallel,
           " x expert-parallel ", layout.expert_parallel,
           " needs several ranks: add --nproc N, or start ranks with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set");
    return std::nullopt;
  }
  // STRATA_DIST_TIMEOUT_S (set by the launcher) wins over the flag only when the flag is unset.
  if (!std::getenv("STRATA_DIST_TIMEOUT_S")) options->timeout = timeout;
  options->backend = backend;
  data_parallel_size(layout, options->world_size);  // fails early, on every rank, for a bad layout
  const char* local_rank = std::getenv("LOCAL_RANK");
  ParallelRun run;
  run.local_rank = local_rank ? std::atoi(local_rank) : options->rank;
#ifdef STRATA_CUDA
  // NCCL works on the current device: one GPU per rank of this machine.
  if (backend == CommBackend::nccl) c10::cuda::set_device(static_cast<c10::DeviceIndex>(run.local_rank));
#endif
  run.world = World::rendezvous(*options);
  run.groups = make_process_groups(*run.world, layout);
  return run;
}

}  // namespace strata::parallel
