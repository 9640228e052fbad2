#pragma once
// Training data. Every source is deterministic given its position, so a resumed run sees exactly
// the batches an uninterrupted one would.
//   ByteTextData   any UTF-8 (or other) text file, one token per byte (vocabulary 256)
//   TokenFileData  pre-tokenised uint16 / uint32 tokens, memory-mapped, for large corpora
//   MqarData       synthetic multi-query associative recall, needs no files
//   RandomTokenData  uniform random tokens, for benchmarks and tests
// Text and token files keep their last `held_out_fraction` for evaluation (before a test part
// that Megatron's --split may set aside, which strata does not read).
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/io/file_fingerprint.h"

namespace strata::train {

struct Batch {
  at::Tensor input_ids;  // [B, T] int64
  at::Tensor labels;     // [B, T] int64; -100 where no loss is taken (labels[t + 1] is predicted at t)
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual Batch next(int64_t batch_size, int64_t seq_length) = 0;
  // The index-th evaluation batch; the same every time it is asked for. Row r of batch i is the
  // held-out sequence i * batch_size + r, wrapping around the held-out split.
  virtual Batch held_out(int64_t index, int64_t batch_size, int64_t seq_length) const = 0;
  // How many distinct sequences of seq_length the held-out split holds before it wraps around;
  // none for synthetic data, which never repeats.
  virtual std::optional<int64_t> held_out_sequences(int64_t seq_length) const = 0;
  virtual uint64_t position() const = 0;  // how far next() has read
  virtual void seek(uint64_t position) = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string describe() const = 0;
  // What this data is: its kind and settings, and for a file its path and fingerprint. Saved with
  // checkpoints, so that a resumed run reads the same data (open_data_source, run_identity.h).
  virtual nlohmann::json identity() const = 0;
  // Refuses, before any step runs, sequences of seq_length that the data cannot fill (the
  // training split, and the held-out split when the run evaluates), naming the split and sizes.
  virtual void check_fits(int64_t seq_length, bool evaluates) const = 0;
};

// Opens the data an identity (or a spec without a fingerprint: {"kind": "text", "path": ...})
// names: kinds "text", "uint16" / "uint32" (with "vocab_size"; both with optional "held_out_fraction"
// and "test_fraction"), "megatron" (indexed datasets, megatron_data.h: "datasets" [{"path",
// "weight"}], "split", "seq_length", "train_samples", "seed", "vocab_size", "eod_mask_loss",
// "eod_token_id"), "mqar" (with "vocab_size", "num_kv_pairs", "seed") and "random" (with
// "vocab_size"). A file whose fingerprint differs from the identity's is refused: `source` (a
// checkpoint) is named in that error.
std::unique_ptr<DataSource> open_data_source(const nlohmann::json& identity, const std::string& source);

class TokenStreamData : public DataSource {
 public:
  Batch next(int64_t batch_size, int64_t seq_length) override;
  Batch held_out(int64_t index, int64_t batch_size, int64_t seq_length) const override;
  std::optional<int64_t> held_out_sequences(int64_t seq_length) const override;
  uint64_t position() const override { return position_; }
  void seek(uint64_t position) override { position_ = position; }
  void check_fits(int64_t seq_length, bool evaluates) const override;

 protected:
  // The file is [training | held out | test]: Megatron's --split order. The test part (0 unless
  // a --split gives it) is never read: strata evaluates on the held-out part alone.
  TokenStreamData(uint64_t num_tokens, double held_out_fraction, double test_fraction, const std::string& source);
  double held_out_fraction() const { return held_out_fraction_; }
  double test_fraction() const { return test_fraction_; }
  // The split fractions for identity(): test_fraction only when there is a test part.
  void add_split(nlohmann::json& identity) const;
  virtual int64_t token(uint64_t index) const = 0;

 private:
  Batch windows(uint64_t first, uint64_t span, uint64_t start, int64_t batch_size, int64_t seq_length) const;

  double held_out_fraction_, test_fraction_;
  uint64_t train_tokens_, held_out_tokens_;
  uint64_t position_ = 0;
  std::string source_;
};

class ByteTextData : public TokenStreamData {
 public:
  ByteTextData(const std::filesystem::path& path, double held_out_fraction = 0.05, double test_fraction = 0.0);
  int64_t vocab_size() const override { return 256; }
  std::string describe() const override;
  nlohmann::json identity() const override;

 private:
  int64_t token(uint64_t index) const override { return static_cast<unsigned char>(bytes_[index]); }
  std::string bytes_;
  std::filesystem::path path_;
  io::FileFingerprint fingerprint_;
};

// Reads through a copy of the file's next tokens (one guarded copy per kChunkTokens, see
// io/guarded_read.h), so a file truncated while training is an error naming it, not SIGBUS.
class TokenFileData : public TokenStreamData {
 public:
  // bytes_per_token: 2 (uint16) or 4 (uint32); tokens must be below vocab_size.
  TokenFileData(const std::filesystem::path& path, int bytes_per_token, int64_t vocab_size,
                double held_out_fraction = 0.05, double test_fraction = 0.0);
  TokenFileData(const TokenFileData&) = delete;  // owns the mapping
  TokenFileData& operator=(const TokenFileData&) = delete;
  ~TokenFileData() override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::string describe() const override;
  nlohmann::json identity() const override;

  static constexpr uint64_t kChunkTokens = 1 << 16;  // more than one window of any usual seq_length

 private:
  TokenFileData(const std::filesystem::path& path, uint64_t size, int bytes_per_token, int64_t vocab_size,
                double held_out_fraction, double test_fraction);
  int64_t token(uint64_t index) const override;
  void read_chunk(uint64_t first) const;  // tokens [first, first + kChunkTokens), fewer at the end
  std::filesystem::path path_;
  io::FileFingerprint fingerprint_;
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
  int bytes_per_token_;
  int64_t vocab_size_;
  // The bytes of tokens from chunk_first_ on. Being a cache behind const token(), it makes one
  // object unsafe to read from two threads at once; sources are read from one thread.
  mutable std::vector<unsigned char> chunk_;
  mutable uint64_t chunk_first_ = 0;
};

// Multi-query associative recall (Zoology): a sequence lists key-value pairs, then asks for some
// keys again; the loss and accuracy count only the recalled values. Keys come from the lower half
// of the vocabulary, values from the upper half, token 0 is unused.
class MqarData : public DataSource {
 public:
  MqarData(int64_t vocab_size, int64_t num_kv_pairs, uint64_t seed);
  Batch next(int64_t batch_size, int64_t seq_length) override;
  Batch held_out(int64_t index, int64_t batch_size, int64_t seq_length) const override;
  std::optional<int64_t> held_out_sequences(int64_t /*seq_length*/) const override { return std::nullopt; }
  uint64_t position() const override { return position_; }
  void seek(uint64_t position) override { position_ = position; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::string describe() const override;
  nlohmann::json identity() const override;
  void check_fits(int64_t seq_length, bool evaluates) const override;

 private:
  Batch sequences(uint64_t first, int64_t batch_size, int64_t seq_length, uint64_t stream) const;
  int64_t vocab_size_, num_kv_pairs_;
  uint64_t seed_, position_ = 0;
};

// Uniform random tokens in [1, vocab_size), a pure function of the position (two sources give the
// same batches), for benchmarks and tests that need data but no task.
class RandomTokenData : public DataSource {
 public:
  explicit RandomTokenData(int64_t vocab_size);
  Batch next(int64_t batch_size, int64_t seq_length) override;
  Batch held_out(int64_t index, int64_t batch_size, int64_t seq_length) const override;
  std::optional<int64_t> held_out_sequences(int64_t /*seq_length*/) const override { return std::nullopt; }
  uint64_t position() const override { return position_; }
  void seek(uint64_t position) override { position_ = position; }
  int64_t vocab_size() const override { return vocab_size_; }
  std::string describe() const override;
  nlohmann::json identity() const override;
  void check_fits(int64_t /*seq_length*/, bool /*evaluates*/) const override {}

 private:
  Batch make(uint64_t first, int64_t batch_size, int64_t seq_length) const;
  int64_t vocab_size_;
  uint64_t position_ = 0;
};

// Fraction of labelled positions whose argmax prediction is right.
double label_accuracy(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace strata::train
