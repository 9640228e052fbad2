#include "strata/io/guarded_read.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "strata/core/error.h"
#include "test_util.h"

namespace strata::io {
namespace {

namespace fs = std::filesystem;

// A file of `pages` pages filled with its own byte offsets (mod 251), mapped read-only; truncate()
// cuts the file under the mapping (ftruncate), as another process rewriting it in place would.
class MappedFile {
 public:
  explicit MappedFile(const std::string& name, size_t pages = 4)
      : path_(fs::temp_directory_path() / cat("strata_guarded_", name, "_", ::getpid())),
        size_(pages * static_cast<size_t>(::sysconf(_SC_PAGESIZE))) {
    std::string bytes(size_, '\0');
    for (size_t i = 0; i < size_; ++i) bytes[i] = static_cast<char>(i % 251);
    std::ofstream(path_, std::ios::binary) << bytes;
    fd_ = ::open(path_.c_str(), O_RDWR);
    data_ = static_cast<const char*>(::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0));
  }
  ~MappedFile() {
    ::munmap(const_cast<char*>(data_), size_);
    ::close(fd_);
    fs::remove(path_);
  }
  void truncate(size_t size) const { ASSERT_EQ(::ftruncate(fd_, static_cast<off_t>(size)), 0); }

  const fs::path& path() const { return path_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  fs::path path_;
  size_t size_;
  int fd_ = -1;
  const char* data_ = nullptr;
};

TEST(GuardedRead, CopiesTheRequestedBytes) {
  const MappedFile file("copies");
  std::vector<char> out(300);
  copy_from_mapping(out.data(), file.data(), 1000, out.size(), file.path().string());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<char>((1000 + i) % 251)) << i;
}

TEST(GuardedRead, ATruncatedFileIsAnErrorNamingItAndTheBytes) {
  const MappedFile file("truncated");
  file.truncate(0);
  std::vector<char> out(file.size());
  const std::string error = testing::error_of(
      [&] { copy_from_mapping(out.data(), file.data(), 0, out.size(), file.path().string()); });
  EXPECT_NE(error.find(file.path().string() + ": the file changed while being read: bytes [0, " +
                       std::to_string(file.size()) + ") could not be read"),
            std::string::npos)
      << error;
  // The guard holds again after a fault (SIGBUS is unblocked on the way out of the handler).
  EXPECT_NE(testing::error_of([&] { copy_from_mapping(out.data(), file.data(), 0, 16, "again"); }).find("again: "),
            std::string::npos);
}

TEST(GuardedRead, BytesBeforeTheNewEndStillRead) {
  const MappedFile file("partly");
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  file.truncate(page);
  char out[8];
  copy_from_mapping(out, file.data(), page - 8, 8, file.path().string());
  EXPECT_EQ(out[7], static_cast<char>((page - 1) % 251));
  EXPECT_THROW(copy_from_mapping(out, file.data(), page, 8, file.path().string()), Error);
}

TEST(GuardedRead, EachThreadCatchesItsOwnFaults) {
  const MappedFile file("threads");
  file.truncate(0);
  std::vector<int> caught(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      char out[64];
      for (int i = 0; i < 50; ++i) {
        try {
          copy_from_mapping(out, file.data(), static_cast<uint64_t>(t) * 64, 64, "thread");
        } catch (const Error&) {
          ++caught[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(caught, std::vector<int>(4, 50));
}

// Faults outside a guarded copy are not ours: they go to the handler that was there before, or
// kill the process as they would have without the guard. Each runs in a fresh process, so the
// guard's handler is installed after the test's own.
TEST(GuardedReadDeathTest, AFaultOutsideAGuardKillsWithSigbus) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const MappedFile file("unguarded_default");
        fs::remove(file.path());  // the process dies before its destructor could
        char out[8];
        copy_from_mapping(out, file.data(), 0, 8, file.path().string());  // installs the handler
        file.truncate(0);
        volatile char byte = file.data()[0];
        (void)byte;
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

TEST(GuardedReadDeathTest, AFaultOutsideAGuardReachesTheEarlierHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        std::signal(SIGBUS, [](int) { ::_exit(42); });
        const MappedFile file("unguarded_chained");
        fs::remove(file.path());
        char out[8];
        copy_from_mapping(out, file.data(), 0, 8, file.path().string());
        file.truncate(0);
        volatile char byte = file.data()[0];
        (void)byte;
      },
      ::testing::ExitedWithCode(42), "");
}

}  // namespace
}  // namespace strata::io
