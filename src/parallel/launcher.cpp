#include "strata/parallel/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include <cstring>
#include <filesystem>
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
  auto args = c_strings(argv);
  auto envp = c_strings(env);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) fail("launcher: cannot start ", argv[0], ": ", std::strerror(rc));
  return pid;
}

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
    env["STRATA_DIST_TIMEOUT_S"] = std::to_string(std::max<int64_t>(timeout_s, 1));
    const auto log = o.log_dir.empty() ? std::string() : (std::filesystem::path(o.log_dir) / cat("rank", r, ".log")).string();
    rank_of[spawn(o.argv, rank_environment(env), log)] = r;
  }

  const auto grace = o.grace.value_or(o.timeout + std::chrono::seconds(30));
  std::optional<std::chrono::steady_clock::time_point> first_failure;
  std::map<pid_t, int> running = rank_of;
  while (!running.empty()) {
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
