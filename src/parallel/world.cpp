#include "strata/parallel/world.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include <cstdlib>
#include <limits>
#include <sstream>

#include "error_text.h"
#include "launcher_death.h"
#include "process_group_factory.h"
#include "strata/core/error.h"
#include "strata/core/parse_number.h"

namespace strata::parallel {

namespace {

std::atomic<World*> current_world{nullptr};

constexpr auto kHeartbeatInterval = std::chrono::milliseconds(500);
// How long diagnose() watches the heartbeats: long enough for a live rank to post two.
constexpr auto kDiagnosisWindow = std::chrono::milliseconds(1200);
// Store requests of the monitoring connection give up after this, so a dead store cannot stall
// an error message.
constexpr auto kMonitorTimeout = std::chrono::seconds(3);

std::string key(const char* what, int rank) { return cat("strata/", what, "/", rank); }

std::string to_string(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }
std::vector<uint8_t> to_bytes(const std::string& s) { return {s.begin(), s.end()}; }

double seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }


std::string rank_list(const std::vector<int>& ranks) {
  std::ostringstream out;
  for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
  return out.str();
}

c10::intrusive_ptr<c10d::TCPStore> connect_store(const RendezvousOptions& o, bool server,
                                                 std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(o.master_port);
  store_options.isServer = server;
  store_options.waitWorkers = false;
  store_options.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(o.master_addr, store_options);
}

int env_int(const char* name, const char* value) {
  const auto parsed = parse_int64(value, cat("environment variable ", name));
  if (parsed < std::numeric_limits<int>::min() || parsed > std::numeric_limits<int>::max())
    fail("environment variable ", name, "='", value, "': out of range");
  return static_cast<int>(parsed);
}

}  // namespace

CommBackend parse_comm_backend(const std::string& name) {
  if (name == "gloo") return CommBackend::gloo;
  if (name == "nccl") return CommBackend::nccl;
  fail("distributed backend '", name, "': expected gloo or nccl");
}

std::optional<RendezvousOptions> rendezvous_options_from_env() {
  const char* rank = std::getenv("RANK");
  if (!rank) return std::nullopt;
  RendezvousOptions o;
  o.rank = env_int("RANK", rank);
  const char* world_size = std::getenv("WORLD_SIZE");
  if (!world_size) fail("environment variable RANK=", rank, " is set but WORLD_SIZE is not");
  o.world_size = env_int("WORLD_SIZE", world_size);
  if (const char* addr = std::getenv("MASTER_ADDR")) o.master_addr = addr;
  if (const char* port = std::getenv("MASTER_PORT")) o.master_port = env_int("MASTER_PORT", port);
  if (const char* hosted = std::getenv("STRATA_STORE_HOSTED")) o.store_hosted_by_launcher = std::string(hosted) == "1";
  if (const char* launcher = std::getenv("STRATA_LAUNCHER_PID"))
    o.launcher_pid = env_int("STRATA_LAUNCHER_PID", launcher);
  if (const char* timeout = std::getenv("STRATA_DIST_TIMEOUT_S"))
    o.timeout = std::chrono::seconds(env_int("STRATA_DIST_TIMEOUT_S", timeout));
  return o;
}

World* World::current() { return current_world.load(); }

World::World(RendezvousOptions options, c10::intrusive_ptr<c10d::Store> store)
    : options_(std::move(options)), store_(std::move(store)) {}

std::shared_ptr<World> World::rendezvous(const RendezvousOptions& o) {
  if (o.world_size < 1) fail("world size ", o.world_size, ": expected at least 1 rank");
  if (o.rank < 0 || o.rank >= o.world_size) fail("rank ", o.rank, ": expected 0 <= rank < world size ", o.world_size);
  if (o.master_port < 0 || o.master_port > 65535) fail("master port ", o.master_port, ": expected 0..65535");
  if (current_world.load()) fail("rank ", o.rank, ": this process already joined a parallel run");
  if (o.launcher_pid != 0) die_with_launcher(o.launcher_pid, o.rank);
  const bool host_store = o.rank == 0 && !o.store_hosted_by_launcher;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = connect_store(o, host_store, o.timeout);
  } catch (const std::exception& e) {
    fail("rank ", o.rank, ": cannot ", host_store ? "host" : "reach", " the rendezvous store at ", o.master_addr, ":",
         o.master_port, " within ", seconds(o.timeout), " s (", first_line(e), ")",
         host_store ? "" : "; is the launcher (or rank 0) running?");
  }
  std::shared_ptr<World> world(new World(o, store));
  try {
    world->monitor_store_ = connect_store(o, false, std::chrono::duration_cast<std::chrono::milliseconds>(kMonitorTimeout));
  } catch (const std::exception& e) {
    fail("rank ", o.rank, ": cannot open a second connection to the rendezvous store at ", o.master_addr, ":",
         o.master_port, " (", first_line(e), ")");
  }
  world->start_heartbeat();
  try {
    world->wait_for_all_ranks();
  } catch (const Error& e) {
    world->report_failure(e.what());
    throw;
  }
  std::vector<int> all(o.world_size);
  for (int r = 0; r < o.world_size; ++r) all[r] = r;
  world->world_group_ = world->new_group("world", all);
  current_world.store(world.get());
  return world;
}

void World::wait_for_all_ranks() {
  store_->set(key("arrived", rank()), to_bytes(std::to_string(::getpid())));
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  std::vector<int> missing;
  while (true) {
    missing.clear();
    try {
      for (int r = 0; r < size(); ++r)
        if (!store_->check({key("arrived", r)})) missing.push_back(r);
    } catch (const std::exception& e) {
      fail("rank ", rank(), ": lost the rendezvous store at ", options_.master_addr, ":", options_.master_port,
           " while waiting for the other ranks (", first_line(e), ")");
    }
    if (missing.empty()) return;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  fail("rank ", rank(), ": rendezvous at ", options_.master_addr, ":", options_.master_port, " timed out after ",
       seconds(options_.timeout), " s: rank", missing.size() > 1 ? "s " : " ", rank_list(missing), " of ", size(),
       " never arrived");
}

void World::start_heartbeat() {
  heartbeat_ = std::thread([this] {
    const auto heartbeat_key = key("heartbeat", rank());
    while (!stop_heartbeat_.load()) {
      try {
        monitor_store_->add(heartbeat_key, 1);
      } catch (const std::exception&) {
        // A store that stopped answering is reported by the collective that needs it.
      }
      for (auto waited = std::chrono::milliseconds(0); waited < kHeartbeatInterval && !stop_heartbeat_.load();
           waited += std::chrono::milliseconds(50))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

Group World::new_group(const std::string& name, const std::vector<int>& ranks) {
  int index = -1;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] < 0 || ranks[i] >= size() || (i > 0 && ranks[i] <= ranks[i - 1]))
      fail("process group '", name, "': ranks [", rank_list(ranks), "] must ascend within [0, ", size(), ")");
    if (ranks[i] == rank()) index = static_cast<int>(i);
  }
  if (index < 0) fail("process group '", name, "': rank ", rank(), " is not one of its ranks [", rank_list(ranks), "]");
  const auto description = cat("the ", name, " group (ranks ", rank_list(ranks), ")");
  auto group_store = c10::make_intrusive<c10d::PrefixStore>(cat("strata/group/", name, "/", rank_list(ranks)), store_);
  Group group;
  try {
    const bool loopback = options_.master_addr == "127.0.0.1" || options_.master_addr == "localhost";
    char hostname[256] = {};
    ::gethostname(hostname, sizeof hostname - 1);
    group = make_process_group(group_store, index, static_cast<int>(ranks.size()), options_.backend, options_.timeout,
                               loopback ? "127.0.0.1" : std::string(hostname));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rank ", rank(), ": creating ", description, " failed: ", first_line(e), "\n", diagnose());
  }
  std::lock_guard<std::mutex> lock(mutex_);
  group_names_[group.get()] = description;
  groups_.push_back(group);
  return group;
}

std::string World::describe(const c10d::ProcessGroup* group) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = group_names_.find(group);
  return it == group_names_.end() ? "a process group" : it->second;
}

std::string World::diagnose() {
  const auto store_name = cat(options_.master_addr, ":", options_.master_port);
  std::vector<int64_t> before(size()), after(size());
  std::ostringstream out;
  try {
    for (int r = 0; r < size(); ++r) before[r] = monitor_store_->add(key("heartbeat", r), 0);
    std::this_thread::sleep_for(kDiagnosisWindow);
    for (int r = 0; r < size(); ++r) after[r] = monitor_store_->add(key("heartbeat", r), 0);
    int reported = 0;
    for (int r = 0; r < size(); ++r) {
      if (r == rank()) continue;
      std::string line;
      if (monitor_store_->check({key("failed", r)})) {
        line = cat("rank ", r, " failed: ", to_string(monitor_store_->get(key("failed", r))));
      } else if (monitor_store_->check({key("finished", r)})) {
        line = cat("rank ", r, " had finished");
      } else if (after[r] == before[r]) {
        line = cat("rank ", r, " stopped responding (it exited or hangs)");
      }
      if (line.empty()) continue;
      out << (reported++ ? "\n" : "") << "  " << line;
    }
    if (reported == 0) out << "  every other rank is alive and reported no failure (one may be slow or stuck)";
  } catch (const std::exception& e) {
    return cat("  the rendezvous store at ", store_name,
               " no longer answers: the launcher (or rank 0, which hosts it) has exited (", first_line(e), ")");
  }
  return out.str();
}

void World::report_failure(const std::string& message) {
  failed_.store(true);
  try {
    monitor_store_->set(key("failed", rank()), to_bytes(message.substr(0, message.find('\n'))));
  } catch (const std::exception&) {
    // Without a store there is nobody to tell.
  }
}

void World::finish() {
  if (failed_.load()) return;
  try {
    monitor_store_->set(key("finished", rank()), to_bytes("1"));
    if (rank() != 0 || options_.store_hosted_by_launcher) return;
    // This rank hosts the store: keep it up until every other rank is done with it, has failed,
    // or has stopped sending heartbeats.
    std::vector<int64_t> last(size(), -1);
    std::vector<std::chrono::steady_clock::time_point> moved(size(), std::chrono::steady_clock::now());
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      bool pending = false;
      for (int r = 1; r < size(); ++r) {
        if (monitor_store_->check({key("finished", r)}) || monitor_store_->check({key("failed", r)})) continue;
        const auto beat = monitor_store_->add(key("heartbeat", r), 0);
        const auto now = std::chrono::steady_clock::now();
        if (beat != last[r]) last[r] = beat, moved[r] = now;
        if (now - moved[r] < 4 * kHeartbeatInterval) pending = true;
      }
      if (!pending) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } catch (const std::exception&) {
    // Leaving anyway; the others learn of it from their own connections.
  }
}

World::~World() {
  finish();
  // After a failure the peers may be gone, and a shutdown would wait on them.
  if (!failed_.load()) {
    for (const auto& group : groups_) {
      try {
        shutdown_process_group(group, options_.backend);
      } catch (const std::exception&) {
        // The run is over; a communicator that does not close cleanly changes nothing now.
      }
    }
  }
  stop_heartbeat_.store(true);
  if (heartbeat_.joinable()) heartbeat_.join();
  World* self = this;
  current_world.compare_exchange_strong(self, nullptr);
}

}  // namespace strata::parallel
