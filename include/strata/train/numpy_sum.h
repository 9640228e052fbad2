#pragma once
// numpy.sum of a float64 array, rounding included: pairwise, with eight running sums over blocks
// of up to 128 values. Megatron normalises --split and blend weights by it, and the split's
// document boundaries round products of those quotients, so a plain left-to-right sum could move
// a boundary by one document.
#include <cstddef>
#include <vector>

namespace strata::train {

inline double numpy_sum(const double* values, size_t n) {
  if (n < 8) {
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += values[i];
    return sum;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = values[j];
    size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; ++j) r[j] += values[i + j];
    double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) sum += values[i];
    return sum;
  }
  size_t half = n / 2;
  half -= half % 8;
  return numpy_sum(values, half) + numpy_sum(values + half, n - half);
}

inline double numpy_sum(const std::vector<double>& values) { return numpy_sum(values.data(), values.size()); }

}  // namespace strata::train
