#include "strata/train/checkpoint_dir.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "strata/core/error.h"
#include "strata/core/parse_number.h"
#include "strata/io/atomic_file.h"

namespace strata::train {

namespace fs = std::filesystem;

namespace {

fs::path previous_dir(const fs::path& dir, int64_t iteration) {
  return dir / (iteration_dir_name(iteration) + ".previous");
}

void remove_tree(const fs::path& path) {
  std::error_code error;
  fs::remove_all(path, error);
  if (error) fail(path.string(), ": cannot remove: ", error.message());
}

void rename_dir(const fs::path& from, const fs::path& to) {
  std::error_code error;
  fs::rename(from, to, error);
  if (error) fail("cannot rename ", from.string(), " to ", to.string(), ": ", error.message());
}

}  // namespace

std::string iteration_dir_name(int64_t iteration) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "iter_%07lld", static_cast<long long>(iteration));
  return buf;
}

std::optional<int64_t> tracked_iteration(const fs::path& dir) {
  const auto path = dir / kTrackerFile;
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  std::string number = text.str();
  if (!number.empty() && number.back() == '\n') number.pop_back();
  const auto iteration = parse_int64(number, path.string());
  if (iteration < 0) fail(path.string(), ": iteration ", iteration, " is negative");
  return iteration;
}

fs::path tracked_checkpoint_dir(const fs::path& dir) {
  const auto iteration = tracked_iteration(dir);
  if (!iteration) fail(dir.string(), ": no ", kTrackerFile, " (not a strata training checkpoint folder)");
  const auto folder = dir / iteration_dir_name(*iteration);
  if (fs::is_directory(folder)) return folder;
  // A kill while iteration N was being saved again: the old folder waits under its aside name.
  const auto previous = previous_dir(dir, *iteration);
  if (fs::is_directory(previous)) return previous;
  fail(dir.string(), ": the tracker names iteration ", *iteration, " but ", folder.string(), " is missing");
}

void write_checkpoint_atomically(const fs::path& dir, int64_t iteration,
                                 const std::function<void(const fs::path&)>& write_files,
                                 const std::function<void(std::string_view)>& after_step) {
  auto done = [&](std::string_view step) {
    if (after_step) after_step(step);
  };
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) fail(dir.string(), ": cannot create the checkpoint folder: ", error.message());
  const auto final_dir = dir / iteration_dir_name(iteration);
  const auto temp_dir = dir / (iteration_dir_name(iteration) + ".tmp-" + std::to_string(::getpid()));
  remove_tree(temp_dir);
  fs::create_directory(temp_dir);
  write_files(temp_dir);
  io::sync_directory(temp_dir);
  done("files written");

  // The tracker may name this very iteration (a resumed run saving again where it started, or a
  // kill during an earlier replacement); its folder must stay reachable at every instant.
  const bool tracked = tracked_iteration(dir) == iteration;
  const auto previous = previous_dir(dir, iteration);
  if (fs::is_directory(final_dir)) {
    if (tracked) {
      remove_tree(previous);  // stale: the folder it stood in for is back
      rename_dir(final_dir, previous);
      io::sync_directory(dir);
      done("old folder moved aside");
    } else {
      remove_tree(final_dir);  // left by a kill before its tracker update: nothing names it
      done("unreferenced folder removed");
    }
  }
  rename_dir(temp_dir, final_dir);
  io::sync_directory(dir);
  done("folder renamed into place");
  remove_tree(previous);
  done("old folder removed");
  io::write_file_atomically(dir / kTrackerFile, std::to_string(iteration));
  done("tracker updated");
}

}  // namespace strata::train
