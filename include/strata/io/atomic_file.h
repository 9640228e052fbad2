#pragma once
// Files that readers see whole or not at all: written under a temporary name next to the target,
// synced to disk, then renamed over it (and the rename made durable by syncing the folder).
#include <filesystem>
#include <string>

namespace strata::io {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // an uncommitted file is removed

  void write(const void* data, size_t size);
  // Syncs, closes and renames the file into place.
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomically(const std::filesystem::path& path, const std::string& contents);

// Makes renames and removals inside `dir` durable. Some filesystems refuse fsync on a folder;
// what was written is complete either way, so that is not an error.
void sync_directory(const std::filesystem::path& dir);

}  // namespace strata::io
