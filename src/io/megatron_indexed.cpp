#include "strata/io/megatron_indexed.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "strata/core/error.h"
#include "strata/io/guarded_read.h"

namespace strata::io {

namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr uint64_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;

bool known_code(uint8_t code) { return code >= 1 && code <= 8; }

template <class T>
T little_endian_at(const std::string& bytes, uint64_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

}  // namespace

int megatron_dtype_bytes(MegatronDType dtype) {
  switch (dtype) {
    case MegatronDType::uint8:
    case MegatronDType::int8: return 1;
    case MegatronDType::int16:
    case MegatronDType::uint16: return 2;
    case MegatronDType::int32:
    case MegatronDType::float32: return 4;
    case MegatronDType::int64:
    case MegatronDType::float64: return 8;
  }
  fail("Megatron dtype code ", static_cast<int>(dtype), " is not one Megatron has");
}

std::string megatron_dtype_name(MegatronDType dtype) {
  switch (dtype) {
    case MegatronDType::uint8: return "uint8";
    case MegatronDType::int8: return "int8";
    case MegatronDType::int16: return "int16";
    case MegatronDType::int32: return "int32";
    case MegatronDType::int64: return "int64";
    case MegatronDType::float64: return "float64";
    case MegatronDType::float32: return "float32";
    case MegatronDType::uint16: return "uint16";
  }
  return cat("code ", static_cast<int>(dtype));
}

MegatronDType megatron_token_dtype(int64_t vocab_size) {
  return vocab_size < 65500 ? MegatronDType::uint16 : MegatronDType::int32;
}

std::filesystem::path megatron_idx_path(const std::string& prefix) { return prefix + ".idx"; }
std::filesystem::path megatron_bin_path(const std::string& prefix) { return prefix + ".bin"; }

MegatronIndexedDataset::MegatronIndexedDataset(const std::string& prefix) : prefix_(prefix) {
  read_index();
  map_bin();
}

MegatronIndexedDataset::~MegatronIndexedDataset() {
  if (bin_) ::munmap(const_cast<char*>(bin_), bin_bytes_);
}

void MegatronIndexedDataset::read_index() {
  const auto path = megatron_idx_path(prefix_).string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the index of the Megatron dataset ", prefix_, ": ", std::strerror(errno));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < kHeaderBytes)
    fail(path, ": ", bytes.size(), " bytes, shorter than the ", kHeaderBytes, "-byte header of a Megatron index");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    fail(path, ": does not start with the magic \"MMIDIDX\\0\\0\" of a Megatron index (an indexed dataset's .idx)");
  const auto version = little_endian_at<uint64_t>(bytes, 9);
  if (version != 1) fail(path, ": index version ", version, ", expected 1 (the only version Megatron writes)");
  const auto code = little_endian_at<uint8_t>(bytes, 17);
  if (!known_code(code))
    fail(path, ": dtype code ", static_cast<int>(code),
         " is not one of Megatron's (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16)");
  dtype_ = static_cast<MegatronDType>(code);
  if (dtype_ == MegatronDType::float32 || dtype_ == MegatronDType::float64)
    fail(path, ": dtype ", megatron_dtype_name(dtype_), " (code ", static_cast<int>(code),
         "): token ids must be integers");
  const auto sequences = little_endian_at<uint64_t>(bytes, 18);
  const auto documents = little_endian_at<uint64_t>(bytes, 26);
  const uint64_t room = bytes.size() - kHeaderBytes;
  // Sizes checked by division first: counts read from a corrupt file may overflow a product.
  if (sequences > room / 12 || documents > room / 8 || 12 * sequences + 8 * documents != room)
    fail(path, ": ", bytes.size(), " bytes, but its header announces ", sequences, " sequences and ", documents,
         " document indices, which take ", kHeaderBytes, " + 12 x ", sequences, " + 8 x ", documents,
         " bytes: the index is truncated or corrupt");
  lengths_.resize(sequences);
  pointers_.resize(sequences);
  document_indices_.resize(documents);
  std::memcpy(lengths_.data(), bytes.data() + kHeaderBytes, 4 * sequences);
  std::memcpy(pointers_.data(), bytes.data() + kHeaderBytes + 4 * sequences, 8 * sequences);
  std::memcpy(document_indices_.data(), bytes.data() + kHeaderBytes + 12 * sequences, 8 * documents);

  if (documents == 0 || document_indices_.front() != 0)
    fail(path, ": the document indices must start at 0 (Megatron writes [0, ...]); found ",
         documents == 0 ? "none" : std::to_string(document_indices_.front()));
  for (uint64_t d = 1; d < documents; ++d)
    if (document_indices_[d] < document_indices_[d - 1])
      fail(path, ": document index ", d, " is ", document_indices_[d], ", below document index ", d - 1, " (",
           document_indices_[d - 1], "): document indices never decrease");
  if (document_indices_.back() != static_cast<int64_t>(sequences))
    fail(path, ": the last document index is ", document_indices_.back(), ", expected the sequence count ", sequences);
  const int width = megatron_dtype_bytes(dtype_);
  uint64_t end = 0;  // where the sequences so far end in .bin, in bytes
  for (uint64_t s = 0; s < sequences; ++s) {
    if (lengths_[s] < 0) fail(path, ": sequence ", s, " has length ", lengths_[s], "; lengths are never negative");
    if (pointers_[s] != static_cast<int64_t>(end))
      fail(path, ": sequence ", s, " starts at byte ", pointers_[s], " of ", megatron_bin_path(prefix_).string(),
           ", expected ", end, s == 0 ? " (the first sequence starts the file)" : " (where the one before it ends)",
           ": this index does not describe that .bin");
    end += static_cast<uint64_t>(lengths_[s]) * width;
  }
  num_tokens_ = end / width;
}

void MegatronIndexedDataset::map_bin() {
  const auto path = megatron_bin_path(prefix_).string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open the tokens of the Megatron dataset ", prefix_, ": ", std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    fail(path, ": cannot read its size: ", std::strerror(error));
  }
  bin_bytes_ = static_cast<uint64_t>(info.st_size);
  const uint64_t described = num_tokens_ * megatron_dtype_bytes(dtype_);
  if (bin_bytes_ != described) {
    ::close(fd);
    fail(path, ": ", bin_bytes_, " bytes, but ", megatron_idx_path(prefix_).string(), " describes ", described,
         " (", num_tokens_, " ", megatron_dtype_name(dtype_), " tokens in ", lengths_.size(), " sequences): ",
         bin_bytes_ < described ? "the .bin is truncated" : "the .bin holds more than its index describes",
         " or the two files are of different datasets");
  }
  void* map = bin_bytes_ ? ::mmap(nullptr, bin_bytes_, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  const int error = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail(path, ": mmap failed: ", std::strerror(error));
  bin_ = static_cast<const char*>(map);
}

void MegatronIndexedDataset::read(int64_t sequence, int64_t offset, int64_t count, int64_t* out) const {
  if (sequence < 0 || sequence >= num_sequences() || offset < 0 || count < 0 || offset + count > lengths_[sequence])
    fail(prefix_, ": tokens [", offset, ", ", offset + count, ") of sequence ", sequence,
         " are outside the dataset (", num_sequences(), " sequences",
         sequence >= 0 && sequence < num_sequences() ? cat(", this one of ", lengths_[sequence], " tokens") : "", ")");
  const int width = megatron_dtype_bytes(dtype_);
  std::vector<char> bytes(static_cast<size_t>(count) * width);
  copy_from_mapping(bytes.data(), bin_, pointers_[sequence] + offset * width, bytes.size(),
                    megatron_bin_path(prefix_).string());
  auto widen = [&]<class T>(T) {
    for (int64_t i = 0; i < count; ++i) {
      T value;
      std::memcpy(&value, bytes.data() + i * sizeof(T), sizeof(T));
      out[i] = static_cast<int64_t>(value);
    }
  };
  switch (dtype_) {
    case MegatronDType::uint8: widen(uint8_t{}); break;
    case MegatronDType::int8: widen(int8_t{}); break;
    case MegatronDType::int16: widen(int16_t{}); break;
    case MegatronDType::uint16: widen(uint16_t{}); break;
    case MegatronDType::int32: widen(int32_t{}); break;
    case MegatronDType::int64: widen(int64_t{}); break;
    case MegatronDType::float32:
    case MegatronDType::float64: fail(prefix_, ": float tokens");  // refused when opened
  }
}

std::vector<int64_t> MegatronIndexedDataset::sequence(int64_t sequence) const {
  if (sequence < 0 || sequence >= num_sequences())
    fail(prefix_, ": sequence ", sequence, " is outside the dataset (", num_sequences(), " sequences)");
  std::vector<int64_t> tokens(lengths_[sequence]);
  read(sequence, 0, lengths_[sequence], tokens.data());
  return tokens;
}

}  // namespace strata::io
