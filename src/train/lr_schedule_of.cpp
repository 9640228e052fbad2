// A run's learning-rate schedule and length from its options, iteration- or sample-based.
#include "strata/core/error.h"
#include "strata/train/trainer.h"

namespace strata::train {

int64_t train_iterations(const TrainOptions& o, int64_t global_batch_size) {
  if (o.train_samples == 0) return o.train_iters;
  const auto iterations = o.train_samples / global_batch_size;
  if (iterations < 1)
    fail("--train-samples ", o.train_samples, ": fewer than one global batch of ", global_batch_size, " sequences");
  return iterations;
}

LrSchedule lr_schedule_of(const TrainOptions& o, int64_t global_batch_size) {
  LrSchedule s;
  s.style = parse_lr_decay_style(o.lr_decay_style, "--lr-decay-style");
  s.wsd_style = parse_wsd_decay_style(o.lr_wsd_decay_style, "--lr-wsd-decay-style");
  s.lr = o.lr;
  s.min_lr = o.min_lr;
  s.warmup_init = o.lr_warmup_init;
  if (o.train_samples > 0) {
    const auto batch = static_cast<double>(global_batch_size);
    s.decay_iters = static_cast<double>(o.lr_decay_samples ? o.lr_decay_samples : o.train_samples) / batch;
    s.warmup_iters = static_cast<double>(o.lr_warmup_samples) / batch;
    s.wsd_decay_iters = static_cast<double>(o.lr_wsd_decay_samples) / batch;
  } else {
    s.decay_iters = static_cast<double>(o.lr_decay_iters ? o.lr_decay_iters : o.train_iters);
    s.warmup_iters = static_cast<double>(o.lr_warmup_iters);
    s.wsd_decay_iters = static_cast<double>(o.lr_wsd_decay_iters);
  }
  if (o.lr_warmup_fraction) s.warmup_iters = *o.lr_warmup_fraction * s.decay_iters;
  return s;
}

}  // namespace strata::train
