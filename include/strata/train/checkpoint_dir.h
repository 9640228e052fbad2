#pragma once
// The folder of a run's checkpoints, Megatron's layout, and how it changes atomically:
//   DIR/latest_checkpointed_iteration.txt   the iteration of the newest complete checkpoint
//   DIR/iter_0000060/                       one checkpoint
// A checkpoint is written into DIR/iter_0000060.tmp-<pid>/ (every file synced), the folder is
// renamed into place, and only then is the tracker replaced (written aside, synced, renamed).
// Re-saving the iteration the tracker names moves the old folder to iter_0000060.previous first,
// and readers take that while iter_0000060 is missing. So a kill at any instant leaves the tracker
// naming a complete checkpoint (tests/train/checkpoint_dir_test.cpp kills the writer at each step).
// Once the tracker is replaced, what killed writers left goes: their temporary folders, and folders
// moved aside (back to their own name when that is free, for they are that iteration's checkpoint).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace strata::train {

constexpr const char* kTrackerFile = "latest_checkpointed_iteration.txt";

std::string iteration_dir_name(int64_t iteration);  // "iter_0000060"

// The iteration the tracker names; nullopt when DIR has no tracker. A tracker that holds anything
// but one non-negative integer (and a newline) is an error.
std::optional<int64_t> tracked_iteration(const std::filesystem::path& dir);

// The complete checkpoint folder the tracker names; an error naming what is missing otherwise.
std::filesystem::path tracked_checkpoint_dir(const std::filesystem::path& dir);

// Writes the checkpoint of `iteration` into DIR as above; `write_files` fills the fresh temporary
// folder it is given, and must sync what it writes (io::AtomicFile does). `after_step`, when set,
// is called with the name of each step once it is done (tests stop the writer there).
void write_checkpoint_atomically(const std::filesystem::path& dir, int64_t iteration,
                                 const std::function<void(const std::filesystem::path&)>& write_files,
                                 const std::function<void(std::string_view step)>& after_step = {});

}  // namespace strata::train
