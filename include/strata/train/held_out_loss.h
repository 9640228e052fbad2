#pragma once
// A model's loss and perplexity on held-out data, as `strata eval` reports them: the mean
// next-token cross-entropy over every labelled token (Megatron's evaluation divides the summed
// loss by the token count, so batches with masked tokens weigh what they hold), and its
// exponential.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "strata/model/language_model.h"
#include "strata/train/data.h"

namespace strata::train {

struct HeldOutLoss {
  double loss = 0.0;
  double perplexity = 0.0;
  int64_t tokens = 0;     // the labelled tokens the loss is the mean of
  int64_t sequences = 0;  // the sequences of seq_length read
};

struct HeldOutLossOptions {
  int64_t seq_length = 0;
  int64_t batch_size = 0;
  // Batches of batch_size to read (wrapping around the split if it holds fewer sequences); none:
  // every held-out sequence once, the last batch smaller when they do not fill it.
  std::optional<int64_t> batches;
  at::Device device = at::kCPU;
  // Called after each batch with the batches done, their number in all, the tokens so far and
  // their mean loss.
  std::function<void(int64_t done, int64_t total, int64_t tokens, double loss)> progress;
};

// Refuses data whose held-out split holds no sequence of seq_length, and synthetic data (which
// never repeats) without a batch count. The model is left in the mode it was in.
HeldOutLoss held_out_loss(LanguageModel& model, const DataSource& data, const HeldOutLossOptions& options);

}  // namespace strata::train
