#include "strata/parallel/run.h"

#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

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

// CPUs this process may run on: a container's or taskset's share, not the machine's.
int usable_cpus() {
  cpu_set_t cpus;
  if (::sched_getaffinity(0, sizeof cpus, &cpus) == 0) return CPU_COUNT(&cpus);
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

int visible_gpus() {
#ifdef STRATA_CUDA
  return static_cast<int>(c10::cuda::device_count());
#else
  return 0;
#endif
}

// The most gloo ranks per CPU core: each rank is a whole process (LibTorch, the replicated parts
// of the model and their optimizer state, intra-op threads), so beyond a few per core ranks only
// take turns on the cores while memory grows with every one (--nproc 1000 exhausts it before the
// rendezvous ends). Four per core still runs a tp 2 x pp 2 layout on a 2-core machine.
constexpr int kRanksPerCpu = 4;

}  // namespace

void check_nproc(int nproc, CommBackend backend) {
  if (nproc < 1) fail("--nproc ", nproc, ": expected at least 1 process");
  if (nproc == 1) return;
  if (backend == CommBackend::nccl) {
    const int gpus = visible_gpus();
    if (nproc > gpus)
      fail("--nproc ", nproc, ": --distributed-backend nccl runs one rank per GPU and ", gpus,
           gpus == 1 ? " GPU is" : " GPUs are", " visible");
    return;
  }
  const int cpus = usable_cpus();
  if (nproc > kRanksPerCpu * cpus)
    fail("--nproc ", nproc, ": at most ", kRanksPerCpu * cpus, " ranks here (", kRanksPerCpu, " per usable CPU core, ",
         cpus, " core", cpus == 1 ? "" : "s", "); more would only share the cores and exhaust the memory");
}

bool should_launch(int nproc) { return nproc > 1 && !std::getenv("RANK"); }

int launch_this_command(int nproc, std::chrono::milliseconds timeout) {
  std::printf("launching %d ranks on this machine\n", nproc);
  std::fflush(stdout);
  const auto exits = launch_ranks({.nproc = nproc, .argv = own_command_line(), .timeout = timeout});
  // Ranks that agree end with their common code: 0, or 128 + the stop signal every rank stopped on
  // (143 for a SIGTERM forwarded by the launcher; rank 0 has said where it stopped, and a second
  // Ctrl-C kills with 130). Any other ending is reported rank by rank.
  const int code = exits.front().exit_code();
  const bool agree = std::all_of(exits.begin(), exits.end(), [&](const RankExit& e) { return e.exit_code() == code; });
  if (agree && (code == 0 || code == 128 + SIGTERM || code == 128 + SIGINT)) return code;
  int failed = 0;
  for (const auto& e : exits) {
    if (e.ok()) continue;
    std::fprintf(stderr, "strata: %s\n", e.describe().c_str());
    ++failed;
  }
  std::fprintf(stderr, "strata: %d of %d ranks failed\n", failed, nproc);
  return agree ? code : 1;
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
  // A peer that dies closes its sockets; the next write to one would kill this rank with SIGPIPE
  // before Gloo could say which peer stopped responding. Ignored, the write fails with EPIPE and
  // the collective's error names the peer.
  ::signal(SIGPIPE, SIG_IGN);
  run.world = World::rendezvous(*options);
  run.groups = make_process_groups(*run.world, layout);
  return run;
}

}  // namespace strata::parallel
