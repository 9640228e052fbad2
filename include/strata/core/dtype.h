#pragma once
// Dtype rules shared by layers that compute in float32 whatever their inputs' storage dtype.
#include <ATen/ATen.h>

namespace strata {

// Reduced-precision types widen to float32 for the numerics; float32 and float64 stay.
inline at::ScalarType at_least_float(at::ScalarType type) { return at::promote_types(type, at::kFloat); }
inline at::Tensor at_least_float(const at::Tensor& t) { return t.to(at_least_float(t.scalar_type())); }

}  // namespace strata
