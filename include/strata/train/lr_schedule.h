#pragma once
// The learning rate at each iteration: Megatron's OptimizerParamScheduler (--lr-decay-style and
// friends). Lengths are in iterations and may be fractional: a sample-based run's lengths are its
// sample counts divided by the global batch, which gives Megatron's rate at every iteration.
#include <cstdint>
#include <string>

namespace strata::train {

enum class LrDecayStyle { Constant, Linear, Cosine, InverseSquareRoot, WSD };
// The shape of WSD's final decay.
enum class WsdDecayStyle { Exponential, Linear, Cosine, MinusSqrt };

// Megatron's spellings: constant, linear, cosine, inverse-square-root, WSD; and exponential,
// linear, cosine, minus_sqrt. Errors name `field` and list the valid values.
std::string to_string(LrDecayStyle style);
std::string to_string(WsdDecayStyle style);
LrDecayStyle parse_lr_decay_style(const std::string& value, const std::string& field);
WsdDecayStyle parse_wsd_decay_style(const std::string& value, const std::string& field);

struct LrSchedule {
  LrDecayStyle style = LrDecayStyle::Cosine;
  double lr = 1e-3;
  double min_lr = 0.0;
  double warmup_init = 0.0;  // the rate warmup starts from (--lr-warmup-init)
  double warmup_iters = 0.0;
  double decay_iters = 1.0;  // decay ends here (warmup included); min_lr after
  // WSD: the rate stays at lr until decay_iters - wsd_decay_iters, then decays to min_lr.
  double wsd_decay_iters = 0.0;
  WsdDecayStyle wsd_style = WsdDecayStyle::Exponential;

  // The rate of iteration `iteration` (from 0). Warmup is linear from warmup_init and counts the
  // iteration being taken, so iteration i of the warmup trains at (i + 1) / warmup_iters of the
  // way (Megatron's first iteration trains at warmup_init); then the decay style from lr to
  // min_lr over (warmup_iters, decay_iters]. inverse-square-root decays as
  // lr * sqrt(warmup_iters / iteration), floored at min_lr.
  double at(int64_t iteration) const;
};

}  // namespace strata::train
