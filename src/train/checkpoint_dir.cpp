#include "strata/train/checkpoint_dir.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "strata/core/error.h"
#include "strata/core/parse_number.h"
#include "strata/io/atomic_file.h"

namespace strata::train {

namespace fs = std::filesystem;

namespace {

// The suffix of a folder moved aside while its iteration is saved again, and the infix of the
// temporary folders and files of a writer (followed by its pid).
constexpr std::string_view kAsideSuffix = ".previous";
constexpr std::string_view kTempInfix = ".tmp-";

fs::path previous_dir(const fs::path& dir, int64_t iteration) {
  return dir / (iteration_dir_name(iteration) + std::string(kAsideSuffix));
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

// What writers killed earlier left in DIR: their temporary folders (each as large as a checkpoint,
// and nothing else would ever remove them) and tracker files, and folders that a replacement they
// did not finish moved aside. Called once the tracker names a folder in place, so no reader takes
// any of these; a run's checkpoints have one writer, so none is still being written. An aside
// folder whose own name is free is all there is of that iteration's checkpoint: it goes back.
void clean_up_after_killed_writers(const fs::path& dir) {
  const auto tracker_temp = std::string(kTrackerFile) + std::string(kTempInfix);
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(dir)) paths.push_back(entry.path());
  for (const auto& path : paths) {
    const auto name = path.filename().string();
    if (!name.starts_with("iter_") && !name.starts_with(tracker_temp)) continue;
    if (name.find(kTempInfix) != std::string::npos) {
      remove_tree(path);
    } else if (name.ends_with(kAsideSuffix)) {
      const auto own = dir / name.substr(0, name.size() - kAsideSuffix.size());
      if (fs::exists(own)) remove_tree(path);
      else rename_dir(path, own);
    }
  }
  io::sync_directory(dir);
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
  const auto temp_dir = dir / (iteration_dir_name(iteration) + std::string(kTempInfix) + std::to_string(::getpid()));
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
  clean_up_after_killed_writers(dir);
  done("leftovers of killed writers cleaned up");
}

}  // namespace strata::train
