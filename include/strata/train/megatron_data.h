#pragma once
// Megatron indexed datasets (.bin/.idx, io/megatron_indexed.h) as training data, sampled as
// Megatron's pretraining does: each prefix's sequences divided by --split (train, valid, test in
// that order), GPT samples of seq_length + 1 tokens built and shuffled per split
// (gpt_samples.h), several datasets mixed by weight or size (megatron_blend.h). The same data,
// flags and seed serve Megatron's training samples in Megatron's order; docs/training.md says
// where strata differs (the held-out split, the last token of a sample, a run that outlasts the
// samples it was built for).
//
// A batch row is a sample's first seq_length tokens, as input and (shifted by the loss) as
// labels. With eod_mask_loss, Megatron's loss mask: no loss on the prediction made at an EOD
// token (the first token of the next document), i.e. labels[t + 1] = -100 where input[t] is EOD.
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/io/file_fingerprint.h"
#include "strata/io/megatron_indexed.h"
#include "strata/train/data.h"
#include "strata/train/gpt_samples.h"
#include "strata/train/megatron_blend.h"

namespace strata::train {

struct MegatronDataSpec {
  DataBlend blend;
  std::string split = "969,30,1";
  int64_t seq_length = 0;
  // Training samples the order is built for (--train-iters x --global-batch-size of the run's
  // first start): the number of epochs, and so the whole order, depends on it.
  int64_t train_samples = 0;
  uint32_t seed = 1234;
  int64_t vocab_size = 0;
  bool eod_mask_loss = false;
  std::optional<int64_t> eod_token_id;
};

class MegatronData : public DataSource {
 public:
  explicit MegatronData(MegatronDataSpec spec);

  Batch next(int64_t batch_size, int64_t seq_length) override;
  Batch held_out(int64_t index, int64_t batch_size, int64_t seq_length) const override;
  std::optional<int64_t> held_out_sequences(int64_t /*seq_length*/) const override { return valid_.size; }
  uint64_t position() const override { return position_; }
  void seek(uint64_t position) override { position_ = position; }
  int64_t vocab_size() const override { return spec_.vocab_size; }
  std::string describe() const override;
  nlohmann::json identity() const override;
  void check_fits(int64_t seq_length, bool evaluates) const override;

  int64_t train_samples() const { return train_.size; }
  int64_t held_out_samples() const { return valid_.size; }
  // The seq_length + 1 tokens of the index-th training / held-out sample (wrapping around).
  std::vector<int64_t> train_sample(uint64_t index) const { return sample(train_, index); }
  std::vector<int64_t> held_out_sample(uint64_t index) const { return sample(valid_, index); }

 private:
  // One split over every dataset: per dataset its GPT samples, and how a blend takes from them.
  struct Split {
    std::string name;
    std::vector<std::unique_ptr<GptSamples>> samples;
    std::optional<BlendIndex> blend;  // none: the samples of the one dataset, in order
    int64_t size = 0;
  };
  Split build_split(int which, std::optional<int64_t> target) const;
  std::vector<int64_t> sample(const Split& split, uint64_t index) const;
  Batch rows(const Split& split, uint64_t first, int64_t batch_size, int64_t seq_length) const;
  void check_seq_length(int64_t seq_length) const;

  MegatronDataSpec spec_;
  std::array<double, 3> split_shares_;
  std::vector<std::unique_ptr<io::MegatronIndexedDataset>> datasets_;
  std::vector<io::FileFingerprint> idx_fingerprints_, bin_fingerprints_;
  Split train_, valid_;
  uint64_t position_ = 0;
};

}  // namespace strata::train
