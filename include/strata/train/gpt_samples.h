#pragma once
// Megatron's GPTDataset over one split of one indexed dataset: which tokens each sample holds, in
// the order they are served. Built as megatron/core/datasets/gpt_dataset.py and helpers.cpp build
// them, with numpy's RandomState (numpy_random_state.h), so the same sequence lengths, split,
// seq_length, seed and sample count give Megatron's samples in Megatron's order:
//   document index  the split's sequences once per epoch, shuffled (the last epoch shuffled on its
//                   own when it is needed for less than 80 % of its samples)
//   sample index    where each sample of seq_length + 1 tokens starts: samples run across
//                   documents, each starting where the one before it ended less one token
//   shuffle index   the order samples are served in (the separate last epoch shuffled apart)
// The epochs are as many as num_samples needs (one when it is not given). Megatron's GPT samples
// hold seq_length + 1 tokens (add_extra_token_to_sequence) and drop the last partial sample.
#include <cstdint>
#include <optional>
#include <vector>

namespace strata::train {

// Tokens [offset, offset + length) of one sequence of the indexed dataset.
struct SamplePiece {
  int64_t sequence;
  int64_t offset;
  int64_t length;
  bool operator==(const SamplePiece&) const = default;
};

class GptSamples {
 public:
  // The split is sequences [first, last) of `sequence_lengths`. With fewer than two tokens in it
  // there are no samples (Megatron cannot build one either).
  GptSamples(const std::vector<int32_t>& sequence_lengths, int64_t first, int64_t last, int64_t seq_length,
             std::optional<int64_t> num_samples, uint32_t seed);

  int64_t size() const { return static_cast<int64_t>(shuffle_index_.size()); }
  uint64_t tokens_per_epoch() const { return tokens_per_epoch_; }
  int64_t num_epochs() const { return num_epochs_; }
  // The pieces of the index-th sample served (index < size()): seq_length + 1 tokens.
  std::vector<SamplePiece> pieces(int64_t index) const;

  const std::vector<int32_t>& document_index() const { return document_index_; }
  const std::vector<int64_t>& sample_index() const { return sample_index_; }  // [size + 1][2], flat
  const std::vector<int64_t>& shuffle_index() const { return shuffle_index_; }

 private:
  const std::vector<int32_t>* lengths_;
  int64_t seq_length_;
  uint64_t tokens_per_epoch_ = 0;
  int64_t num_epochs_ = 0;
  std::vector<int32_t> document_index_;
  std::vector<int64_t> sample_index_;
  std::vector<int64_t> shuffle_index_;
};

}  // namespace strata::train
