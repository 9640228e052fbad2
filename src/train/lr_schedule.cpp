#include "strata/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "strata/core/error.h"

namespace strata::train {

std::string to_string(LrDecayStyle style) {
  switch (style) {
    case LrDecayStyle::Constant: return "constant";
    case LrDecayStyle::Linear: return "linear";
    case LrDecayStyle::Cosine: return "cosine";
    case LrDecayStyle::InverseSquareRoot: return "inverse-square-root";
    case LrDecayStyle::WSD: return "WSD";
  }
  return "?";
}

std::string to_string(WsdDecayStyle style) {
  switch (style) {
    case WsdDecayStyle::Exponential: return "exponential";
    case WsdDecayStyle::Linear: return "linear";
    case WsdDecayStyle::Cosine: return "cosine";
    case WsdDecayStyle::MinusSqrt: return "minus_sqrt";
  }
  return "?";
}

LrDecayStyle parse_lr_decay_style(const std::string& value, const std::string& field) {
  for (auto s : {LrDecayStyle::Constant, LrDecayStyle::Linear, LrDecayStyle::Cosine, LrDecayStyle::InverseSquareRoot,
                 LrDecayStyle::WSD})
    if (to_string(s) == value) return s;
  fail(field, " '", value, "': expected constant, linear, cosine, inverse-square-root or WSD");
}

WsdDecayStyle parse_wsd_decay_style(const std::string& value, const std::string& field) {
  for (auto s : {WsdDecayStyle::Exponential, WsdDecayStyle::Linear, WsdDecayStyle::Cosine, WsdDecayStyle::MinusSqrt})
    if (to_string(s) == value) return s;
  fail(field, " '", value, "': expected exponential, linear, cosine or minus_sqrt");
}

namespace {

// WSD's multiplier of (lr - min_lr) at `progress` in [0, 1] of its final decay.
double wsd_coefficient(WsdDecayStyle style, double progress) {
  switch (style) {
    case WsdDecayStyle::Linear: return 1.0 - progress;
    case WsdDecayStyle::Cosine: return 0.5 * (std::cos(M_PI * progress) + 1.0);
    case WsdDecayStyle::Exponential: return 2.0 * std::pow(0.5, progress) - 1.0;
    case WsdDecayStyle::MinusSqrt: return 1.0 - std::sqrt(progress);
  }
  return 1.0;
}

}  // namespace

double LrSchedule::at(int64_t iteration) const {
  const auto taken = static_cast<double>(iteration + 1);
  if (warmup_iters > 0.0 && taken <= warmup_iters) return warmup_init + (lr - warmup_init) * taken / warmup_iters;
  if (style == LrDecayStyle::Constant) return lr;
  const auto done = static_cast<double>(iteration);
  if (done > decay_iters) return min_lr;
  if (style == LrDecayStyle::InverseSquareRoot)
    return std::max(min_lr, lr * std::sqrt(std::max(warmup_iters, 1.0)) / std::sqrt(std::max(done, 1.0)));
  if (style == LrDecayStyle::WSD) {
    const double anneal_start = decay_iters - wsd_decay_iters;
    if (done <= anneal_start) return lr;
    const double progress = std::min(1.0, (done - anneal_start) / std::max(wsd_decay_iters, 1.0));
    return min_lr + wsd_coefficient(wsd_style, progress) * (lr - min_lr);
  }
  const double span = std::max(1.0, decay_iters - warmup_iters);
  const double progress = std::clamp((done - warmup_iters) / span, 0.0, 1.0);
  if (style == LrDecayStyle::Linear) return min_lr + (1.0 - progress) * (lr - min_lr);
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace strata::train
