#pragma once
// Which dtype conversions loading may make without asking: only those that keep every value
// exactly. A checkpoint whose tensor would change in the copy is refused instead of silently
// rounded (float64 into float32) or reinterpreted (integers into floating point).
#include <ATen/ATen.h>

namespace strata {

// True when every value of `from` is the same value in `to`: the same dtype, or a widening within
// floating point (float16 / bfloat16 -> float32 -> float64) or within the integers (int8 / uint8 ->
// int16 -> int32 -> int64). Refused although no value changes: integers or bool into floating
// point (an integer tensor where a float is expected is a quantized weight or the wrong tensor),
// and float8 into anything (float8 checkpoints store weights divided by separate per-block
// scales, so the bare values are not the weights).
inline bool converts_exactly(at::ScalarType from, at::ScalarType to) {
  if (from == to) return true;
  switch (to) {
    case at::kFloat: return from == at::kHalf || from == at::kBFloat16;
    case at::kDouble: return from == at::kHalf || from == at::kBFloat16 || from == at::kFloat;
    case at::kLong: return from == at::kInt || from == at::kShort || from == at::kChar || from == at::kByte;
    case at::kInt: return from == at::kShort || from == at::kChar || from == at::kByte;
    case at::kShort: return from == at::kChar || from == at::kByte;
    default: return false;
  }
}

}  // namespace strata
