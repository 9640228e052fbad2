// The range of every training option, checked before any work; each error names the flag.
#include <array>
#include <cmath>

#include "strata/core/error.h"
#include "strata/train/trainer.h"

namespace strata::train {

namespace {

void at_least(int64_t value, int64_t min, const char* flag) {
  if (value < min) fail(flag, " ", value, ": expected at least ", min);
}

void finite_at_least(double value, double min, const char* flag) {
  if (!std::isfinite(value) || value < min) fail(flag, " ", value, ": expected a finite number >= ", min);
}

void finite_positive(double value, const char* flag) {
  if (!std::isfinite(value) || value <= 0.0) fail(flag, " ", value, ": expected a finite number > 0");
}

void probability_below_one(double value, const char* flag) {
  if (!(value >= 0.0 && value < 1.0)) fail(flag, " ", value, ": expected a value in [0, 1)");
}

// Megatron's rules for the schedule's lengths: iteration- or sample-based, not both; a warmup
// given as a fraction or as a length, not both; WSD's final decay given in the run's unit.
void check_schedule_lengths(const TrainOptions& o) {
  at_least(o.train_samples, 0, "--train-samples");
  at_least(o.lr_decay_samples, 0, "--lr-decay-samples");
  at_least(o.lr_warmup_samples, 0, "--lr-warmup-samples");
  at_least(o.lr_wsd_decay_samples, 0, "--lr-wsd-decay-samples");
  at_least(o.lr_wsd_decay_iters, 0, "--lr-wsd-decay-iters");
  const bool samples = o.train_samples > 0;
  using Lengths = std::array<std::pair<int64_t, const char*>, 3>;
  const Lengths iteration_lengths = {{
      {o.lr_decay_iters, "--lr-decay-iters"}, {o.lr_warmup_iters, "--lr-warmup-iters"},
      {o.lr_wsd_decay_iters, "--lr-wsd-decay-iters"}}};
  const Lengths sample_lengths = {{
      {o.lr_decay_samples, "--lr-decay-samples"}, {o.lr_warmup_samples, "--lr-warmup-samples"},
      {o.lr_wsd_decay_samples, "--lr-wsd-decay-samples"}}};
  // Lengths of the other unit than the run's must be unset.
  for (const auto& [value, flag] : samples ? iteration_lengths : sample_lengths)
    if (value != 0)
      fail(flag, " ", value, ": this run is ",
           samples ? "sample-based (--train-samples" : "iteration-based (no --train-samples",
           "); give the schedule's lengths in ", samples ? "samples" : "iterations");
  if (o.lr_warmup_fraction) {
    if (!(*o.lr_warmup_fraction >= 0.0 && *o.lr_warmup_fraction <= 1.0))
      fail("--lr-warmup-fraction ", *o.lr_warmup_fraction, ": expected a value in [0, 1]");
    if (o.lr_warmup_iters != 0 || o.lr_warmup_samples != 0)
      fail("--lr-warmup-fraction ", *o.lr_warmup_fraction, ": give the warmup either as a fraction or as ",
           samples ? "--lr-warmup-samples" : "--lr-warmup-iters", ", not both");
  }
  const auto style = parse_lr_decay_style(o.lr_decay_style, "--lr-decay-style");
  parse_wsd_decay_style(o.lr_wsd_decay_style, "--lr-wsd-decay-style");
  if (style == LrDecayStyle::WSD && (samples ? o.lr_wsd_decay_samples : o.lr_wsd_decay_iters) == 0)
    fail("--lr-decay-style WSD: give the length of its final decay with ",
         samples ? "--lr-wsd-decay-samples" : "--lr-wsd-decay-iters");
}

}  // namespace

void check_train_options(const TrainOptions& o) {
  at_least(o.train_iters, 1, "--train-iters");
  at_least(o.micro_batch_size, 1, "--micro-batch-size");
  at_least(o.global_batch_size, 0, "--global-batch-size");
  if (o.global_batch_size != 0 && o.global_batch_size % o.micro_batch_size != 0)
    fail("--global-batch-size ", o.global_batch_size, ": must be a multiple of --micro-batch-size ", o.micro_batch_size);
  at_least(o.seq_length, 2, "--seq-length");
  finite_positive(o.lr, "--lr");
  finite_at_least(o.min_lr, 0.0, "--min-lr");
  if (o.min_lr > o.lr) fail("--min-lr ", o.min_lr, ": expected at most --lr ", o.lr);
  at_least(o.lr_warmup_iters, 0, "--lr-warmup-iters");
  at_least(o.lr_decay_iters, 0, "--lr-decay-iters");
  finite_at_least(o.lr_warmup_init, 0.0, "--lr-warmup-init");
  if (o.lr_warmup_init > o.lr) fail("--lr-warmup-init ", o.lr_warmup_init, ": expected at most --lr ", o.lr);
  check_schedule_lengths(o);
  finite_at_least(o.adam.weight_decay, 0.0, "--weight-decay");
  probability_below_one(o.adam.beta1, "--adam-beta1");
  probability_below_one(o.adam.beta2, "--adam-beta2");
  finite_positive(o.adam.eps, "--adam-eps");
  finite_at_least(o.clip_grad, 0.0, "--clip-grad");
  at_least(o.save_interval, 0, "--save-interval");
  at_least(o.log_interval, 1, "--log-interval");
  at_least(o.eval_interval, 0, "--eval-interval");
  at_least(o.eval_iters, 0, "--eval-iters");
  finite_at_least(o.exit_duration_in_mins, 0.0, "--exit-duration-in-mins");
  at_least(o.exit_interval, 0, "--exit-interval");
  at_least(o.grad_bucket_bytes, 1, "grad_bucket_bytes");
  if (o.bf16 && o.device.type() != at::kCUDA)
    fail("--bf16: bfloat16 autocast runs on CUDA; this run is on ", o.device.str());
  if (o.finetune && o.load.empty()) fail("--finetune: give the checkpoint to start from with --load");
  if (o.override_opt_param_scheduler && o.load.empty())
    fail("--override-opt_param-scheduler: applies to a resumed run; give its checkpoint with --load");
}

}  // namespace strata::train
