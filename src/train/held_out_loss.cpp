#include "strata/train/held_out_loss.h"

#include <cmath>

#include "strata/core/error.h"
#include "strata/model/loss.h"

namespace strata::train {

HeldOutLoss held_out_loss(LanguageModel& model, const DataSource& data, const HeldOutLossOptions& o) {
  if (o.seq_length < 2) fail("--seq-length ", o.seq_length, ": expected at least 2 (a token and the next)");
  if (o.batch_size < 1) fail("--micro-batch-size ", o.batch_size, ": expected at least 1");
  int64_t sequences = 0;
  if (o.batches) {
    if (*o.batches < 1) fail("--eval-iters ", *o.batches, ": expected at least 1 batch");
    sequences = *o.batches * o.batch_size;
  } else {
    const auto held_out = data.held_out_sequences(o.seq_length);
    if (!held_out) fail(data.describe(), ": synthetic held-out data never repeats; give the number of batches (--eval-iters)");
    sequences = *held_out;
  }
  if (sequences == 0)
    fail(data.describe(), ": the held-out split holds no sequence of --seq-length ", o.seq_length,
         " tokens; give a shorter --seq-length or more held-out data");
  const int64_t batches = (sequences + o.batch_size - 1) / o.batch_size;

  at::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double loss_sum = 0.0;
  int64_t tokens = 0;
  for (int64_t b = 0; b < batches; ++b) {
    auto batch = data.held_out(b, o.batch_size, o.seq_length);
    const auto rows = std::min(o.batch_size, sequences - b * o.batch_size);
    const auto input_ids = batch.input_ids.narrow(0, 0, rows).to(o.device);
    const auto labels = batch.labels.narrow(0, 0, rows).to(o.device);
    // Position t predicts labels[t + 1]: the labelled tokens are those after the first.
    const auto labelled = labels.narrow(1, 1, o.seq_length - 1).ne(-100).sum().item<int64_t>();
    if (labelled > 0) {
      loss_sum += causal_lm_loss(model.forward(input_ids), labels).item<double>() * static_cast<double>(labelled);
      tokens += labelled;
    }
    if (o.progress) o.progress(b + 1, batches, tokens, tokens ? loss_sum / static_cast<double>(tokens) : 0.0);
  }
  model.train(was_training);
  if (tokens == 0) fail(data.describe(), ": every held-out token is masked from the loss (--eod-mask-loss); nothing to evaluate");
  const double loss = loss_sum / static_cast<double>(tokens);
  return {loss, std::exp(loss), tokens, sequences};
}

}  // namespace strata::train
