#include "strata/layers/rotary_frequencies.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace strata {

namespace {

constexpr double kPi = std::numbers::pi;

// HF's formulas divide Python numbers by tensors, which Python computes as
// tensor.reciprocal() * number; doing the same keeps the frequencies bit-identical to HF's.
at::Tensor divide_number_by(double number, const at::Tensor& t) { return t.reciprocal() * number; }

// base^(2i / dim) for i < dim / 2: how many positions each pair takes to turn one radian.
at::Tensor base_powers(int64_t dim, double base, at::Device device) {
  auto exponents = at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat) /
                   static_cast<double>(dim);
  return at::pow(base, exponents);
}

// The (fractional) pair index whose frequency turns `rotations` times over `context` positions.
double yarn_pair_for_rotations(double rotations, int64_t dim, double base, int64_t context) {
  return static_cast<double>(dim) * std::log(static_cast<double>(context) / (rotations * 2.0 * kPi)) /
         (2.0 * std::log(base));
}

// Pairs below the beta_fast index keep the pre-training frequency (they turn often enough over the
// original context to extrapolate), pairs above the beta_slow index are interpolated (divided by
// factor), and a linear ramp blends the two in between.
at::Tensor yarn_inverse_frequencies(int64_t dim, double base, const RotaryScaling& s, at::Device device) {
  const auto powers = base_powers(dim, base, device);
  const auto extrapolated = divide_number_by(1.0, powers);
  const auto interpolated = divide_number_by(1.0, powers * s.factor);
  double low = yarn_pair_for_rotations(s.beta_fast, dim, base, s.original_max_position_embeddings);
  double high = yarn_pair_for_rotations(s.beta_slow, dim, base, s.original_max_position_embeddings);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // as HF: a ramp of zero width would divide by zero
  const auto pairs = at::arange(dim / 2, at::TensorOptions().dtype(at::kFloat).device(device));
  const auto ramp = ((pairs - low) / (high - low)).clamp(0.0, 1.0);
  const auto extrapolated_weight = 1.0 - ramp;
  return interpolated * (1.0 - extrapolated_weight) + extrapolated * extrapolated_weight;
}

// Llama 3.1: wavelengths below original / high_freq_factor keep their frequency, those above
// original / low_freq_factor are divided by factor, and those between blend the two smoothly.
at::Tensor llama3_inverse_frequencies(int64_t dim, double base, const RotaryScaling& s, at::Device device) {
  const auto unscaled = divide_number_by(1.0, base_powers(dim, base, device));
  const auto context = static_cast<double>(s.original_max_position_embeddings);
  const double long_wavelength = context / s.low_freq_factor, short_wavelength = context / s.high_freq_factor;
  const auto wavelength = divide_number_by(2.0 * kPi, unscaled);
  const auto banded = at::where(wavelength > long_wavelength, unscaled / s.factor, unscaled);
  const auto smooth =
      (divide_number_by(context, wavelength) - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  const auto blended = (1.0 - smooth) * banded / s.factor + smooth * banded;
  const auto middle = wavelength.ge(short_wavelength).logical_and(wavelength.le(long_wavelength));
  return at::where(middle, blended, banded);
}

}  // namespace

at::Tensor rotary_inverse_frequencies(int64_t rotary_dim, double base, const RotaryScaling& scaling,
                                      at::Device device) {
  switch (scaling.kind) {
    case RotaryScalingKind::Yarn: return yarn_inverse_frequencies(rotary_dim, base, scaling, device);
    case RotaryScalingKind::Llama3: return llama3_inverse_frequencies(rotary_dim, base, scaling, device);
    case RotaryScalingKind::Linear:  // dividing the frequencies by factor divides the positions by it
      return divide_number_by(1.0, base_powers(rotary_dim, base, device)) / scaling.factor;
    case RotaryScalingKind::None: break;
  }
  return divide_number_by(1.0, base_powers(rotary_dim, base, device));
}

double yarn_mscale(double factor, double mscale) { return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0; }

double rotary_table_scale(const RotaryScaling& s) {
  if (s.kind != RotaryScalingKind::Yarn) return 1.0;
  if (s.attention_factor) return *s.attention_factor;
  // HF treats a zero mscale like an absent one.
  if (s.mscale != 0.0 && s.mscale_all_dim != 0.0)
    return yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim);
  return yarn_mscale(s.factor, 1.0);
}

double latent_attention_softmax_scale_factor(const RotaryScaling& s) {
  if (s.kind != RotaryScalingKind::Yarn || s.mscale_all_dim == 0.0) return 1.0;
  const double m = yarn_mscale(s.factor, s.mscale_all_dim);
  return m * m;
}

}  // namespace strata
