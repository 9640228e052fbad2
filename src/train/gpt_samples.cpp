#include "strata/train/gpt_samples.h"

#include <numeric>

#include "strata/core/error.h"
#include "strata/train/numpy_random_state.h"

namespace strata::train {

namespace {

// The split's sequences, `epochs` times over, shuffled as one array; with a separate last epoch,
// the epochs before it and the last one each shuffled on their own (in that order).
std::vector<int32_t> build_document_index(int64_t first, int64_t last, int64_t epochs, bool separate_last,
                                    NumpyRandomState& random) {
  auto tiled = [&](int64_t times) {
    std::vector<int32_t> index;
    index.reserve(static_cast<size_t>((last - first) * times));
    for (int64_t e = 0; e < times; ++e)
      for (int64_t s = first; s < last; ++s) index.push_back(static_cast<int32_t>(s));
    random.shuffle(index);
    return index;
  };
  if (!separate_last || epochs == 1) return tiled(epochs);
  auto index = tiled(epochs - 1);
  const auto final_epoch = tiled(1);
  index.insert(index.end(), final_epoch.begin(), final_epoch.end());
  return index;
}

// Rows (document-index position, token offset) where each sample starts, and one past the last.
// A sample takes seq_length + 1 tokens, so the next one starts at its last token.
std::vector<int64_t> build_sample_index(const std::vector<int32_t>& lengths, const std::vector<int32_t>& documents,
                                  int64_t seq_length, int64_t num_samples) {
  std::vector<int64_t> index;
  index.reserve(2 * static_cast<size_t>(num_samples + 1));
  int64_t position = 0, offset = 0;
  index.insert(index.end(), {position, offset});
  for (int64_t sample = 1; sample <= num_samples; ++sample) {
    int64_t remaining = seq_length + 1;
    while (remaining != 0) {
      const int64_t length = lengths[documents[position]] - offset;
      remaining -= length;
      if (remaining <= 0) {
        offset += remaining + length - 1;
        remaining = 0;
      } else if (position == static_cast<int64_t>(documents.size()) - 1) {
        offset = lengths[documents[position]] - 1;  // the data ends here
        break;
      } else {
        ++position;
        offset = 0;
      }
    }
    index.insert(index.end(), {position, offset});
  }
  return index;
}

std::vector<int64_t> shuffled_range(int64_t begin, int64_t end, NumpyRandomState& random) {
  std::vector<int64_t> range(static_cast<size_t>(end - begin));
  std::iota(range.begin(), range.end(), begin);
  random.shuffle(range);
  return range;
}

}  // namespace

GptSamples::GptSamples(const std::vector<int32_t>& lengths, int64_t first, int64_t last, int64_t seq_length,
                       std::optional<int64_t> num_samples, uint32_t seed)
    : lengths_(&lengths), seq_length_(seq_length) {
  if (first < 0 || last < first || last > static_cast<int64_t>(lengths.size()))
    fail("GPT samples: sequences [", first, ", ", last, ") are outside the dataset's ", lengths.size());
  if (seq_length < 2) fail("GPT samples: seq_length ", seq_length, ", expected at least 2");
  for (int64_t s = first; s < last; ++s) tokens_per_epoch_ += static_cast<uint64_t>(lengths[s]);
  if (tokens_per_epoch_ < 2) return;  // nothing to build a sample from
  const auto per_epoch = static_cast<int64_t>(tokens_per_epoch_);
  num_epochs_ = 1;
  if (num_samples) {
    const int64_t wanted = *num_samples * seq_length + 1;
    for (int64_t tokens = per_epoch; tokens < wanted; tokens += per_epoch) ++num_epochs_;
  }
  bool separate_last = false;
  int64_t samples_before_last = 0;
  if (num_epochs_ > 1) {
    samples_before_last = ((num_epochs_ - 1) * per_epoch - 1) / seq_length;
    const int64_t from_last = *num_samples - samples_before_last;
    const int64_t samples_per_epoch = (per_epoch - 1) / seq_length;
    separate_last = from_last < static_cast<int64_t>(0.80 * static_cast<double>(samples_per_epoch));
  }
  NumpyRandomState random(seed);
  document_index_ = build_document_index(first, last, num_epochs_, separate_last, random);
  const int64_t total = (num_epochs_ * per_epoch - 1) / seq_length;
  sample_index_ = build_sample_index(lengths, document_index_, seq_length, total);
  if (separate_last) {
    shuffle_index_ = shuffled_range(0, samples_before_last, random);
    const auto rest = shuffled_range(samples_before_last, total, random);
    shuffle_index_.insert(shuffle_index_.end(), rest.begin(), rest.end());
  } else {
    shuffle_index_ = shuffled_range(0, total, random);
  }
}

std::vector<SamplePiece> GptSamples::pieces(int64_t index) const {
  if (index < 0 || index >= size()) fail("GPT samples: sample ", index, " of ", size());
  const int64_t sample = shuffle_index_[index];
  const int64_t begin = sample_index_[2 * sample], begin_offset = sample_index_[2 * sample + 1];
  const int64_t end = sample_index_[2 * sample + 2], end_offset = sample_index_[2 * sample + 3];
  std::vector<SamplePiece> pieces;
  for (int64_t position = begin; position <= end; ++position) {
    const int64_t sequence = document_index_[position];
    const int64_t offset = position == begin ? begin_offset : 0;
    const int64_t length = position < end ? (*lengths_)[sequence] - offset : end_offset + 1 - offset;
    pieces.push_back({sequence, offset, length});
  }
  return pieces;
}

}  // namespace strata::train
