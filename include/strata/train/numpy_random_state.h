#pragma once
// numpy.random.RandomState(seed).shuffle, bit for bit. Megatron's GPTDataset shuffles its document
// and sample indices with it, so strata builds them with this to serve Megatron's samples in
// Megatron's order. RandomState seeds its MT19937 as std::mt19937 does (init_genrand), and its
// legacy shuffle is Fisher-Yates from the back, drawing each index by numpy's random_interval:
// the smallest all-ones mask covering the bound, 32-bit draws rejected until one is within it.
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace strata::train {

class NumpyRandomState {
 public:
  explicit NumpyRandomState(uint32_t seed) : engine_(seed) {}

  // A uniform integer in [0, max], as numpy's random_interval draws it.
  uint64_t interval(uint64_t max) {
    if (max == 0) return 0;
    uint64_t mask = max;
    for (int shift = 1; shift <= 32; shift *= 2) mask |= mask >> shift;
    uint64_t value;
    if (max <= 0xffffffffull) {
      while ((value = engine_() & mask) > max) {
      }
    } else {
      while ((value = ((static_cast<uint64_t>(engine_()) << 32 | engine_()) & mask)) > max) {
      }
    }
    return value;
  }

  template <class T>
  void shuffle(std::vector<T>& values) {
    for (size_t i = values.size(); i > 1; --i) std::swap(values[i - 1], values[interval(i - 1)]);
  }

 private:
  std::mt19937 engine_;
};

}  // namespace strata::train
