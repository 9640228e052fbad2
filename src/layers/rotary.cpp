#include "strata/layers/rotary.h"

#include "strata/core/error.h"
#include "strata/kernels/rotary.h"
#include "strata/layers/rotary_frequencies.h"

namespace strata {

RotaryEmbedding::RotaryEmbedding(int64_t rotary_dim, double base, RotaryScaling scaling)
    : rotary_dim_(rotary_dim), base_(base), scaling_(scaling), table_scale_(rotary_table_scale(scaling)) {
  if (rotary_dim % 2 != 0) fail("rotary embedding: rotary_dim = ", rotary_dim, " must be even");
  validate(scaling_, "rotary embedding: scaling");
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::tables(int64_t seq_len, int64_t offset, at::Device device) const {
  return tables(at::arange(offset, offset + seq_len, at::TensorOptions().dtype(at::kLong).device(device)));
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::tables(const at::Tensor& positions) const {
  // Same float32 arithmetic as HF: angles = position * inv_freq, then cos and sin times the scale.
  auto inv_freq = rotary_inverse_frequencies(rotary_dim_, base_, scaling_, positions.device());
  auto freqs = at::outer(positions.to(at::kFloat), inv_freq);
  auto angles = at::cat({freqs, freqs}, -1);
  if (table_scale_ == 1.0) return {angles.cos(), angles.sin()};
  return {angles.cos() * table_scale_, angles.sin() * table_scale_};
}

// The fused kernel on CUDA, its LibTorch twin (these ATen ops) elsewhere.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return kernels::apply_rotary(x, cos, sin);
}

}  // namespace strata
