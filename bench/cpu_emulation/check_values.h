#pragma once
// What the emulation checks share (hc_boundary_check.cpp, hc_boundary_forward_check.cpp,
// l2_normalize_heads_check.cpp): bfloat16 bits as the kernels round them, and the relative error
// they judge by.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace emulation_check {

// x rounded to bfloat16 (nearest even, as __float2bfloat16_rn), as bits.
inline uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// max |got(i) - want[i]| / max |want[i]| over want's indices.
template <class Got>
double rel(Got got, const std::vector<double>& want) {
  double e = 0, s = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    e = std::max(e, std::abs(got(i) - want[i]));
    s = std::max(s, std::abs(want[i]));
  }
  return s > 0 ? e / s : e;
}

}  // namespace emulation_check
