#pragma once
// Megatron-LM's indexed dataset (megatron/core/datasets/indexed_dataset.py, "MMapIndexedDataset"):
// PREFIX.idx describes sequences of token ids stored back to back in PREFIX.bin, grouped into
// documents. What Megatron's tools/preprocess_data.py writes and its GPTDataset reads.
//
//   .idx  "MMIDIDX\0\0" (9 bytes), version (uint64, 1), dtype code (uint8), sequence count S
//         (uint64), document-index count D (uint64), then S sequence lengths (int32), S byte
//         offsets of the sequences in .bin (int64) and D document indices (int64): document d is
//         sequences [doc[d], doc[d + 1]), doc[0] = 0 and doc[D - 1] = S (so D - 1 documents).
//   .bin  the tokens, little-endian, each of the dtype's width.
//
// Everything is checked when the dataset opens, so a truncated or mismatched pair is an error
// naming the file and what disagrees, never a wrong read later. The .idx is read into memory; the
// .bin is memory-mapped and read through guarded copies (guarded_read.h): a .bin truncated while
// training is an error naming it, not SIGBUS.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace strata::io {

// Megatron's DType codes. The float codes exist in Megatron but cannot hold token ids.
enum class MegatronDType : uint8_t {
  uint8 = 1,
  int8 = 2,
  int16 = 3,
  int32 = 4,
  int64 = 5,
  float64 = 6,
  float32 = 7,
  uint16 = 8
};

int megatron_dtype_bytes(MegatronDType dtype);
std::string megatron_dtype_name(MegatronDType dtype);

// The dtype preprocess_data.py stores a vocabulary's ids in (Megatron's DType.optimal_dtype):
// uint16 below 65500 ids, else int32.
MegatronDType megatron_token_dtype(int64_t vocab_size);

std::filesystem::path megatron_idx_path(const std::string& prefix);
std::filesystem::path megatron_bin_path(const std::string& prefix);

class MegatronIndexedDataset {
 public:
  // Opens PREFIX.idx and PREFIX.bin; any disagreement between them is a strata::Error.
  explicit MegatronIndexedDataset(const std::string& prefix);
  MegatronIndexedDataset(const MegatronIndexedDataset&) = delete;  // owns the mapping
  MegatronIndexedDataset& operator=(const MegatronIndexedDataset&) = delete;
  ~MegatronIndexedDataset();

  const std::string& prefix() const { return prefix_; }
  MegatronDType dtype() const { return dtype_; }
  int64_t num_sequences() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t num_documents() const { return static_cast<int64_t>(document_indices_.size()) - 1; }
  uint64_t num_tokens() const { return num_tokens_; }
  const std::vector<int32_t>& sequence_lengths() const { return lengths_; }
  const std::vector<int64_t>& sequence_pointers() const { return pointers_; }
  const std::vector<int64_t>& document_indices() const { return document_indices_; }

  // Tokens [offset, offset + count) of `sequence`, widened to int64, written to `out`.
  void read(int64_t sequence, int64_t offset, int64_t count, int64_t* out) const;
  std::vector<int64_t> sequence(int64_t sequence) const;

 private:
  void read_index();
  void map_bin();

  std::string prefix_;
  MegatronDType dtype_ = MegatronDType::int32;
  std::vector<int32_t> lengths_;
  std::vector<int64_t> pointers_, document_indices_;
  uint64_t num_tokens_ = 0;
  const char* bin_ = nullptr;
  uint64_t bin_bytes_ = 0;
};

}  // namespace strata::io
