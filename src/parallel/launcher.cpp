#include "strata/parallel/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <thread>

#include "error_text.h"
#include "strata/core/error.h"

extern char** environ;

namespace strata::parallel {

namespace {

std::vector<std::string> rank_environment(const std::map<std::string, std::string>& overrides) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [k, v] : overrides) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

pid_t spawn(std::vector<std::string> argv, std::vector<std::string> env, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  // Each rank in a session of its own (as torchrun does): a terminal's Ctrl-C or hangup reaches
  // only the launcher, which forwards it, so a rank counts the user's Ctrl-C presses, not the
  // copies that the terminal and the launcher each deliver.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID);
  auto args = c_strings(argv);
  auto envp = c_strings(env);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, &attributes, args.data(), envp.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) fail("launcher: cannot start ", argv[0], ": ", std::strerror(rc));
  return pid;
}

// SIGTERM, SIGINT and SIGHUP to the launcher go to every running rank, which saves and stops at
// its next step boundary (train/stop_conditions.h); the launcher keeps waiting for them. Counted,
// not just flagged, so that a second Ctrl-C is forwarded as a second one. A signal the launcher
// was started with ignored stays ignored (its ranks inherit that).
class SignalForwarding {
 public:
  static constexpr int kSignals[] = {SIGTERM, SIGINT, SIGHUP};
  static constexpr const char* kNames[] = {"SIGTERM", "SIGINT", "SIGHUP"};

  SignalForwarding() {
    struct sigaction action {};
    action.sa_handler = count;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (size_t i = 0; i < std::size(kSignals); ++i) {
      received_[i].store(0);
      struct sigaction current {};
      ::sigaction(kSignals[i], nullptr, &current);
      replaced_[i] = current.sa_handler != SIG_IGN && ::sigaction(kSignals[i], &action, &previous_[i]) == 0;
    }
  }
  ~SignalForwarding() {
    for (size_t i = 0; i < std::size(kSignals); ++i)
      if (replaced_[i]) ::sigaction(kSignals[i], &previous_[i], nullptr);
  }
  SignalForwarding(const SignalForwarding&) = delete;
  SignalForwarding& operator=(const SignalForwarding&) = delete;

  // Sends each signal received since the last call to every running rank.
  void forward(const std::map<pid_t, int>& running) {
    for (size_t i = 0; i < std::size(kSignals); ++i) {
      const int received = received_[i].load();
      if (received == forwarded_[i]) continue;
      forwarded_[i] = received;
      std::fprintf(stderr, "launcher: forwarding %s to %zu running rank%s\n", kNames[i],
                   running.size(), running.size() == 1 ? "" : "s");
      for (const auto& [pid, rank] : running) ::kill(pid, kSignals[i]);
    }
  }

 private:
  static void count(int signal) {
    for (size_t i = 0; i < std::size(kSignals); ++i)
      if (kSignals[i] == signal) received_[i].fetch_add(1);
  }

  static inline std::atomic<int> received_[std::size(kSignals)];
  int forwarded_[std::size(kSignals)] = {};
  bool replaced_[std::size(kSignals)] = {};
  struct sigaction previous_[std::size(kSignals)] {};
};

RankExit exit_of(int rank, int status) {
  RankExit e{.rank = rank};
  if (WIFSIGNALED(status)) {
    e.signaled = true;
    e.code = WTERMSIG(status);
  } else {
    e.code = WEXITSTATUS(status);
  }
  return e;
}

}  // namespace

int RankExit::exit_code() const { return signaled ? 128 + code : code; }

std::string RankExit::describe() const {
  if (!signaled) return cat("rank ", rank, " exited with code ", code);
  return cat("rank ", rank, killed_by_launcher ? " was stopped by the launcher" : " was killed", " by signal ", code,
             " (", strsignal(code), ")");
}

std::string current_executable() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

std::vector<RankExit> launch_ranks(const LaunchOptions& o) {
  if (o.nproc < 1) fail("--nproc ", o.nproc, ": expected at least 1 process");
  if (o.argv.empty()) fail("launcher: no program to start");
  // The store listens on a port the system picks, so concurrent runs on one machine never collide.
  c10d::TCPStoreOptions store_options;
  store_options.port = 0;
  store_options.isServer = true;
  store_options.waitWorkers = false;
  store_options.timeout = o.timeout;
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", store_options);
  } catch (const std::exception& e) {
    fail("launcher: cannot host the rendezvous store on 127.0.0.1 (", first_line(e), ")");
  }
  if (!o.log_dir.empty()) std::filesystem::create_directories(o.log_dir);

  const auto timeout_s = std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count();
  // Before the first rank starts: a signal that comes while they start reaches them too.
  SignalForwarding forwarding;
  std::map<pid_t, int> rank_of;
  std::vector<RankExit> exits(o.nproc);
  for (int r = 0; r < o.nproc; ++r) {
    auto env = o.env;
    env["RANK"] = std::to_string(r);
    env["LOCAL_RANK"] = std::to_string(r);
    env["WORLD_SIZE"] = std::to_string(o.nproc);
    env["LOCAL_WORLD_SIZE"] = std::to_string(o.nproc);
    env["MASTER_ADDR"] = "127.0.0.1";
    env["MASTER_PORT"] = std::to_string(store->getPort());
    env["STRATA_STORE_HOSTED"] = "1";
    env["STRATA_LAUNCHER_PID"] = std::to_string(::getpid());
    env["STRATA_DIST_TIMEOUT_S"] = std::to_string(std::max<int64_t>(timeout_s, 1));
    const auto log = o.log_dir.empty() ? std::string() : (std::filesystem::path(o.log_dir) / cat("rank", r, ".log")).string();
    rank_of[spawn(o.argv, rank_environment(env), log)] = r;
  }

  const auto grace = o.grace.value_or(o.timeout + std::chrono::seconds(30));
  std::optional<std::chrono::steady_clock::time_point> first_failure;
  std::map<pid_t, int> running = rank_of;
  while (!running.empty()) {
    forwarding.forward(running);
    int status = 0;
    for (auto it = running.begin(); it != running.end();) {
      if (::waitpid(it->first, &status, WNOHANG) != it->first) {
        ++it;
        continue;
      }
      const int r = it->second;
      exits[r] = exit_of(r, status);
      if (!exits[r].ok() && !first_failure) first_failure = std::chrono::steady_clock::now();
      it = running.erase(it);
    }
    if (first_failure && std::chrono::steady_clock::now() - *first_failure > grace) {
      for (const auto& [p, r] : running) {
        ::kill(p, SIGKILL);
        ::waitpid(p, &status, 0);
        exits[r] = exit_of(r, status);
        exits[r].killed_by_launcher = true;
      }
      running.clear();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return exits;
}

}  // namespace strata::parallel
