#pragma once
// The ranks of one parallel run and how they found each other: a c10d TCPStore rendezvous (the
// store lives in the launcher, or in rank 0 when ranks are started by other means), Gloo process
// groups for CPU tensors and NCCL ones for CUDA tensors, and the liveness records that turn "a
// collective failed" into "rank 3 stopped responding".
//
// Every rank posts a heartbeat to the store twice a second from a thread of its own. When a
// collective or the rendezvous fails, diagnose() reads the heartbeats and the failure notes other
// ranks left, so the error each survivor prints names the rank that died or hung.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace strata::parallel {

using Group = c10::intrusive_ptr<c10d::ProcessGroup>;

enum class CommBackend { gloo, nccl };
CommBackend parse_comm_backend(const std::string& name);  // "gloo" / "nccl"; errors list both

struct RendezvousOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // The launcher hosts the store (`strata train --nproc`), so rank 0 connects like the others and
  // the store outlives any rank, which keeps the liveness records readable after a rank dies.
  bool store_hosted_by_launcher = false;
  // How long the rendezvous, store requests and each collective may wait before failing.
  std::chrono::milliseconds timeout = std::chrono::minutes(10);
  CommBackend backend = CommBackend::gloo;
  // The launcher that started this rank (`strata train --nproc`; 0: none): the rank joins only
  // while the launcher lives and dies with it (src/parallel/launcher_death.h).
  int launcher_pid = 0;
};

// The environment variables torchrun sets: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; plus
// STRATA_STORE_HOSTED=1 and STRATA_LAUNCHER_PID (set by strata's launcher) and
// STRATA_DIST_TIMEOUT_S. Without RANK: nullopt (a single-process run). Errors name the variable
// and its bad value.
std::optional<RendezvousOptions> rendezvous_options_from_env();

class World {
 public:
  // Connects to the store, waits (up to the timeout) for every rank, and creates the world group.
  // A rank that never arrives makes every other rank fail with an error listing the missing ranks.
  static std::shared_ptr<World> rendezvous(const RendezvousOptions& options);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return options_.rank; }
  int size() const { return options_.world_size; }
  std::chrono::milliseconds timeout() const { return options_.timeout; }
  CommBackend backend() const { return options_.backend; }
  const Group& world_group() const { return world_group_; }

  // A process group of the given global ranks (ascending, containing this rank), every member
  // calling with the same name and ranks; `name` keeps groups apart in the store and in errors.
  Group new_group(const std::string& name, const std::vector<int>& ranks);

  // "the tp group (ranks 0, 1)" for errors; "a process group" for groups made elsewhere.
  std::string describe(const c10d::ProcessGroup* group) const;

  // What the other ranks are doing, for an error message: which of them reported a failure,
  // finished, or stopped sending heartbeats. Waits about a second to see which heartbeats move.
  std::string diagnose();
  // Leaves this rank's failure (its first line) where the others' diagnose() finds it.
  void report_failure(const std::string& message);

  // The world of this process (null in a single-process run).
  static World* current();

 private:
  World(RendezvousOptions options, c10::intrusive_ptr<c10d::Store> store);
  void wait_for_all_ranks();
  void start_heartbeat();
  void finish();  // marks this rank finished; the store's host waits for the others first

  RendezvousOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  // A second connection for heartbeats and diagnosis, with a short timeout: a request on the main
  // connection may be blocked waiting for a key.
  c10::intrusive_ptr<c10d::Store> monitor_store_;
  Group world_group_;
  std::map<const c10d::ProcessGroup*, std::string> group_names_;
  std::vector<Group> groups_;  // shut down when the world ends
  mutable std::mutex mutex_;
  std::atomic<bool> stop_heartbeat_{false};
  std::atomic<bool> failed_{false};
  std::thread heartbeat_;
};

}  // namespace strata::parallel
