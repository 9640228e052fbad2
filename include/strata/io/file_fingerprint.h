#pragma once
// A cheap fingerprint of a (possibly huge) data file: its size and a 64-bit FNV-1a hash of its
// first and last MiB and of 64 evenly spread 4 KiB blocks. It tells "the same file" from "another
// or a changed file" when a run resumes, at the cost of reading ~2.3 MiB whatever the file's size;
// a change confined to bytes it does not read goes unnoticed.
#include <cstdint>
#include <filesystem>
#include <string>

namespace strata::io {

struct FileFingerprint {
  uint64_t size = 0;
  std::string hash;  // 16 hex digits

  bool operator==(const FileFingerprint&) const = default;
};

FileFingerprint file_fingerprint(const std::filesystem::path& path);

}  // namespace strata::io
