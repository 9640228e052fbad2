#include "strata/train/data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "strata/core/error.h"
#include "strata/io/guarded_read.h"

namespace strata::train {

TokenStreamData::TokenStreamData(uint64_t num_tokens, double held_out_fraction, double test_fraction,
                                 const std::string& source)
    : held_out_fraction_(held_out_fraction), test_fraction_(test_fraction), source_(source) {
  if (held_out_fraction < 0.0 || held_out_fraction >= 1.0)
    fail(source, ": held-out fraction ", held_out_fraction, " must be in [0, 1)");
  if (test_fraction < 0.0 || held_out_fraction + test_fraction >= 1.0)
    fail(source, ": test fraction ", test_fraction, " must be >= 0 and leave a training part beside the held-out ",
         held_out_fraction);
  held_out_tokens_ = static_cast<uint64_t>(static_cast<double>(num_tokens) * held_out_fraction);
  const auto test_tokens = static_cast<uint64_t>(static_cast<double>(num_tokens) * test_fraction);
  train_tokens_ = num_tokens - held_out_tokens_ - test_tokens;
}

void TokenStreamData::add_split(nlohmann::json& identity) const {
  identity["held_out_fraction"] = held_out_fraction_;
  if (test_fraction_ > 0.0) identity["test_fraction"] = test_fraction_;
}

Batch TokenStreamData::windows(uint64_t first, uint64_t span, uint64_t start, int64_t batch_size,
                               int64_t seq_length) const {
  if (span < static_cast<uint64_t>(seq_length))
    fail(source_, ": ", span, " tokens cannot fill one sequence of --seq-length ", seq_length);
  auto ids = at::empty({batch_size, seq_length}, at::kLong);
  auto* out = ids.data_ptr<int64_t>();
  // Consecutive windows, wrapping around the split; a window never straddles the wrap.
  const uint64_t windows_per_pass = span / seq_length;
  for (int64_t b = 0; b < batch_size; ++b) {
    const uint64_t window = (start + b) % windows_per_pass;
    for (int64_t t = 0; t < seq_length; ++t) out[b * seq_length + t] = token(first + window * seq_length + t);
  }
  return {ids, ids.clone()};
}

void TokenStreamData::check_fits(int64_t seq_length, bool evaluates) const {
  const auto length = static_cast<uint64_t>(seq_length);
  if (train_tokens_ < length)
    fail(source_, ": the training split holds ", train_tokens_, " tokens, fewer than one sequence of --seq-length ",
         seq_length);
  if (evaluates && held_out_tokens_ < length)
    fail(source_, ": the held-out split (", test_fraction_ > 0.0 ? "" : "the last ", held_out_fraction_ * 100.0,
         test_fraction_ > 0.0 ? "% of the file, after the training split" : "% of the file", ") holds ",
         held_out_tokens_, " tokens, fewer than one sequence of --seq-length ", seq_length,
         ": use a longer file, a shorter --seq-length, or --eval-iters 0 to train without evaluation");
}

Batch TokenStreamData::next(int64_t batch_size, int64_t seq_length) {
  auto batch = windows(0, train_tokens_, position_, batch_size, seq_length);
  position_ += batch_size;
  return batch;
}

Batch TokenStreamData::held_out(int64_t index, int64_t batch_size, int64_t seq_length) const {
  if (held_out_tokens_ == 0) fail(source_, ": no held-out split (held-out fraction is 0)");
  return windows(train_tokens_, held_out_tokens_, static_cast<uint64_t>(index * batch_size), batch_size, seq_length);
}

std::optional<int64_t> TokenStreamData::held_out_sequences(int64_t seq_length) const {
  return static_cast<int64_t>(held_out_tokens_ / static_cast<uint64_t>(seq_length));
}

namespace {
// The size of a data file, or an error that names it (std::filesystem's own says little).
uint64_t data_file_size(const std::filesystem::path& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error) fail(path.string(), ": cannot read the data file: ", error.message());
  return size;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open the data file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

ByteTextData::ByteTextData(const std::filesystem::path& path, double held_out_fraction, double test_fraction)
    : TokenStreamData(data_file_size(path), held_out_fraction, test_fraction, path.string()),
      bytes_(read_file(path)),
      path_(path),
      fingerprint_(io::file_fingerprint(path)) {}

std::string ByteTextData::describe() const { return cat(path_.string(), " (", bytes_.size(), " bytes, byte tokens)"); }

nlohmann::json ByteTextData::identity() const {
  nlohmann::json out = {{"kind", "text"},
                        {"path", std::filesystem::absolute(path_).string()},
                        {"size", fingerprint_.size},
                        {"fingerprint", fingerprint_.hash}};
  add_split(out);
  return out;
}

namespace {
// The size of a token file, checked before anything is mapped: it must exist and hold whole tokens.
uint64_t token_file_size(const std::filesystem::path& path, int bytes_per_token) {
  if (bytes_per_token != 2 && bytes_per_token != 4)
    fail(path.string(), ": token width ", bytes_per_token, " bytes; expected 2 (uint16) or 4 (uint32)");
  std::error_code error;
  const uint64_t size = std::filesystem::file_size(path, error);
  if (error) fail(path.string(), ": cannot read the token file: ", error.message());
  if (size % bytes_per_token != 0)
    fail(path.string(), ": size ", size, " bytes is not a multiple of the token width ", bytes_per_token);
  return size;
}
}  // namespace

TokenFileData::TokenFileData(const std::filesystem::path& path, int bytes_per_token, int64_t vocab_size,
                             double held_out_fraction, double test_fraction)
    : TokenFileData(path, token_file_size(path, bytes_per_token), bytes_per_token, vocab_size, held_out_fraction,
                    test_fraction) {}

TokenFileData::TokenFileData(const std::filesystem::path& path, uint64_t size, int bytes_per_token,
                             int64_t vocab_size, double held_out_fraction, double test_fraction)
    : TokenStreamData(size / bytes_per_token, held_out_fraction, test_fraction, path.string()),
      path_(path),
      fingerprint_(io::file_fingerprint(path)),
      size_(size),
      bytes_per_token_(bytes_per_token),
      vocab_size_(vocab_size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path.string(), ": cannot open the token file: ", std::strerror(errno));
  // The token count above came from the size before opening; the mapping must be of that file.
  struct stat info {};
  const bool same_size = ::fstat(fd, &info) == 0 && static_cast<uint64_t>(info.st_size) == size_;
  void* map = same_size && size_ ? ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  const int mmap_error = errno;
  ::close(fd);
  if (!same_size)
    fail(path.string(), ": the token file changed while being opened: ", size_, " bytes, then ", info.st_size);
  if (map == MAP_FAILED) fail(path.string(), ": mmap failed: ", std::strerror(mmap_error));
  data_ = static_cast<const unsigned char*>(map);
}

TokenFileData::~TokenFileData() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
}

void TokenFileData::read_chunk(uint64_t first) const {
  const uint64_t tokens = std::min<uint64_t>(kChunkTokens, size_ / bytes_per_token_ - first);
  std::vector<unsigned char> bytes(tokens * bytes_per_token_);
  io::copy_from_mapping(bytes.data(), reinterpret_cast<const char*>(data_), first * bytes_per_token_, bytes.size(),
                        path_.string());
  chunk_ = std::move(bytes);
  chunk_first_ = first;
}

int64_t TokenFileData::token(uint64_t index) const {
  if (index < chunk_first_ || index - chunk_first_ >= chunk_.size() / bytes_per_token_) read_chunk(index);
  const unsigned char* bytes = chunk_.data() + (index - chunk_first_) * bytes_per_token_;
  int64_t value = 0;
  if (bytes_per_token_ == 2) {
    uint16_t v;
    std::memcpy(&v, bytes, 2);
    value = v;
  } else {
    uint32_t v;
    std::memcpy(&v, bytes, 4);
    value = v;
  }
  if (value >= vocab_size_)
    fail(path_.string(), ": token ", value, " at index ", index, " is outside the vocabulary (vocab_size ", vocab_size_, ")");
  return value;
}

std::string TokenFileData::describe() const {
  return cat(path_.string(), " (", size_ / bytes_per_token_, " uint", 8 * bytes_per_token_, " tokens)");
}

nlohmann::json TokenFileData::identity() const {
  nlohmann::json out = {{"kind", cat("uint", 8 * bytes_per_token_)},
                        {"path", std::filesystem::absolute(path_).string()},
                        {"vocab_size", vocab_size_},
                        {"size", fingerprint_.size},
                        {"fingerprint", fingerprint_.hash}};
  add_split(out);
  return out;
}

MqarData::MqarData(int64_t vocab_size, int64_t num_kv_pairs, uint64_t seed)
    : vocab_size_(vocab_size), num_kv_pairs_(num_kv_pairs), seed_(seed) {
  const int64_t keys = vocab_size / 2 - 1;
  if (num_kv_pairs <= 0 || num_kv_pairs > keys)
    fail("MQAR: ", num_kv_pairs, " key-value pairs need at least that many keys; vocab_size ", vocab_size,
         " gives ", keys);
}

namespace {
// PyTorch's CPU generator keeps 32 bits of its seed, so the (seed, stream, index) triple is mixed
// (splitmix64) and folded into 32 bits rather than packed into separate bit ranges.
uint64_t sequence_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull ^ (stream + 1) * 0xBF58476D1CE4E5B9ull ^ index * 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (z ^ (z >> 32)) & 0xFFFFFFFFull;
}
}  // namespace

void MqarData::check_fits(int64_t seq_length, bool /*evaluates*/) const {
  if ((seq_length - 2 * num_kv_pairs_) / 2 < 1)
    fail("MQAR: --seq-length ", seq_length, " leaves no room for queries after ", num_kv_pairs_,
         " key-value pairs (need at least ", 2 * num_kv_pairs_ + 2, ")");
}

Batch MqarData::sequences(uint64_t first, int64_t batch_size, int64_t seq_length, uint64_t stream) const {
  check_fits(seq_length, false);
  const int64_t queries = (seq_length - 2 * num_kv_pairs_) / 2;
  auto ids = at::zeros({batch_size, seq_length}, at::kLong);
  auto labels = at::full({batch_size, seq_length}, -100, at::kLong);
  const int64_t half = vocab_size_ / 2;
  for (int64_t b = 0; b < batch_size; ++b) {
    // One generator per sequence: sequence n is the same whichever batch it lands in.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(sequence_seed(seed_, stream, first + b));
    auto keys = at::randperm(half - 1, gen, at::kLong).narrow(0, 0, num_kv_pairs_) + 1;
    auto values = at::randint(half, vocab_size_, {num_kv_pairs_}, gen, at::kLong);
    auto asked = at::randint(0, num_kv_pairs_, {queries}, gen, at::kLong);
    auto row = ids[b];
    row.narrow(0, 0, 2 * num_kv_pairs_).view({num_kv_pairs_, 2}).select(1, 0).copy_(keys);
    row.narrow(0, 0, 2 * num_kv_pairs_).view({num_kv_pairs_, 2}).select(1, 1).copy_(values);
    auto query_part = row.narrow(0, 2 * num_kv_pairs_, 2 * queries).view({queries, 2});
    query_part.select(1, 0).copy_(keys.index_select(0, asked));
    query_part.select(1, 1).copy_(values.index_select(0, asked));
    labels[b].narrow(0, 2 * num_kv_pairs_, 2 * queries).view({queries, 2}).select(1, 1).copy_(values.index_select(0, asked));
  }
  return {ids, labels};
}

Batch MqarData::next(int64_t batch_size, int64_t seq_length) {
  auto batch = sequences(position_, batch_size, seq_length, /*stream=*/0);
  position_ += batch_size;
  return batch;
}

Batch MqarData::held_out(int64_t index, int64_t batch_size, int64_t seq_length) const {
  return sequences(static_cast<uint64_t>(index * batch_size), batch_size, seq_length, /*stream=*/1);
}

std::string MqarData::describe() const {
  return cat("multi-query associative recall (vocab ", vocab_size_, ", ", num_kv_pairs_, " key-value pairs)");
}

nlohmann::json MqarData::identity() const {
  return {{"kind", "mqar"}, {"vocab_size", vocab_size_}, {"num_kv_pairs", num_kv_pairs_}, {"seed", seed_}};
}

RandomTokenData::RandomTokenData(int64_t vocab_size) : vocab_size_(vocab_size) {
  if (vocab_size < 2) fail("random tokens: vocab_size ", vocab_size, ": expected at least 2");
}

Batch RandomTokenData::make(uint64_t first, int64_t batch_size, int64_t seq_length) const {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(first + 17);
  auto ids = at::randint(1, vocab_size_, {batch_size, seq_length}, generator, at::kLong);
  return {ids, ids.clone()};
}

Batch RandomTokenData::next(int64_t batch_size, int64_t seq_length) {
  auto batch = make(position_, batch_size, seq_length);
  position_ += static_cast<uint64_t>(batch_size);
  return batch;
}

Batch RandomTokenData::held_out(int64_t index, int64_t batch_size, int64_t seq_length) const {
  return make(1'000'000 + static_cast<uint64_t>(index), batch_size, seq_length);
}

std::string RandomTokenData::describe() const { return cat("random tokens (vocab ", vocab_size_, ")"); }

nlohmann::json RandomTokenData::identity() const { return {{"kind", "random"}, {"vocab_size", vocab_size_}}; }

double label_accuracy(const at::Tensor& logits, const at::Tensor& labels) {
  at::NoGradGuard no_grad;
  const auto t = logits.size(1);
  auto predicted = logits.narrow(1, 0, t - 1).argmax(-1);
  auto target = labels.narrow(1, 1, t - 1).to(predicted.device());
  auto counted = target.ne(-100);
  const auto n = counted.sum().item<int64_t>();
  if (n == 0) return 0.0;
  return predicted.eq(target).logical_and(counted).sum().item<double>() / static_cast<double>(n);
}

}  // namespace strata::train
