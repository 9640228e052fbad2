#include "strata/layers/interleaved_rotary.h"

#include "strata/core/error.h"
#include "strata/layers/rotary_frequencies.h"

namespace strata {

InterleavedRotary::InterleavedRotary(int64_t rotary_dim, double base, RotaryScaling scaling)
    : rotary_dim_(rotary_dim), base_(base), scaling_(scaling), table_scale_(rotary_table_scale(scaling)) {
  if (rotary_dim <= 0 || rotary_dim % 2 != 0)
    fail("interleaved rotary embedding: rotary_dim = ", rotary_dim, ", expected a positive even number");
  validate(scaling_, "interleaved rotary embedding: scaling");
}

std::pair<at::Tensor, at::Tensor> InterleavedRotary::tables(const at::Tensor& positions) const {
  auto inv_freq = rotary_inverse_frequencies(rotary_dim_, base_, scaling_, positions.device());
  auto angles = at::outer(positions.to(at::kFloat), inv_freq);
  if (table_scale_ == 1.0) return {angles.cos(), angles.sin()};
  return {angles.cos() * table_scale_, angles.sin() * table_scale_};
}

at::Tensor apply_interleaved_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const auto pairs = cos.size(-1), rotary_dim = 2 * pairs, dim = x.size(-1);
  if (rotary_dim > dim)
    fail("interleaved rotary embedding: tables of ", rotary_dim, " channels for heads of ", dim);
  auto rotated = x.narrow(-1, dim - rotary_dim, rotary_dim).to(at::kFloat);
  auto shape = rotated.sizes().vec();
  shape.back() = pairs;
  shape.push_back(2);
  auto pair = rotated.reshape(shape);
  auto even = pair.select(-1, 0), odd = pair.select(-1, 1);
  // Tables [T, R/2] broadcast over the batch and the heads of x [B, T, heads, ...].
  auto c = cos.unsqueeze(-2), s = sin.unsqueeze(-2);
  auto out = at::stack({even * c - odd * s, odd * c + even * s}, -1).flatten(-2).to(x.scalar_type());
  if (rotary_dim == dim) return out;
  return at::cat({x.narrow(-1, 0, dim - rotary_dim), out}, -1);
}

}  // namespace strata
