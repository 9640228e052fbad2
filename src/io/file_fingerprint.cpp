#include "strata/io/file_fingerprint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "strata/core/error.h"

namespace strata::io {

namespace {

constexpr uint64_t kEdgeBytes = 1 << 20;
constexpr uint64_t kBlockBytes = 4096;
constexpr uint64_t kBlocks = 64;

struct Fnv1a {
  uint64_t state = 0xcbf29ce484222325ull;
  void add(const unsigned char* data, size_t size) {
    for (size_t i = 0; i < size; ++i) state = (state ^ data[i]) * 0x100000001b3ull;
  }
};

}  // namespace

FileFingerprint file_fingerprint(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path.string(), ": cannot open: ", std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int saved = errno;
    ::close(fd);
    fail(path.string(), ": cannot stat: ", std::strerror(saved));
  }
  const auto size = static_cast<uint64_t>(info.st_size);
  Fnv1a hash;
  std::vector<unsigned char> buffer;
  // Reads with pread, not a mapping: a file that shrinks meanwhile gives a short read, not SIGBUS.
  auto add_range = [&](uint64_t offset, uint64_t length) {
    length = std::min(length, size - std::min(offset, size));
    buffer.resize(length);
    uint64_t got = 0;
    while (got < length) {
      const ssize_t n = ::pread(fd, buffer.data() + got, length - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<uint64_t>(n);
    }
    hash.add(buffer.data(), got);
  };
  add_range(0, kEdgeBytes);
  if (size > 2 * kEdgeBytes) {
    for (uint64_t b = 0; b < kBlocks; ++b) add_range(kEdgeBytes + (size - 2 * kEdgeBytes) / kBlocks * b, kBlockBytes);
    add_range(size - kEdgeBytes, kEdgeBytes);
  } else if (size > kEdgeBytes) {
    add_range(kEdgeBytes, size - kEdgeBytes);
  }
  ::close(fd);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash.state));
  return {size, hex};
}

}  // namespace strata::io
