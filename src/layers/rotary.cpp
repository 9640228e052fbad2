#include "strata/layers/rotary.h"

#include "strata/core/error.h"
#include "strata/kernels/rotary.h"

namespace strata {

RotaryEmbedding::RotaryEmbedding(int64_t rotary_dim, double base) : rotary_dim_(rotary_dim), base_(base) {
  if (rotary_dim % 2 != 0) fail("rotary embedding: rotary_dim = ", rotary_dim, " must be even");
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::tables(int64_t seq_len, int64_t offset, at::Device device) const {
  return tables(at::arange(offset, offset + seq_len, at::TensorOptions().dtype(at::kLong).device(device)));
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::tables(const at::Tensor& positions) const {
  // Same float32 arithmetic as HF: inv_freq = 1 / base^(2i / dim).
  auto exponents = at::arange(0, rotary_dim_, 2, positions.options().dtype(at::kLong)).to(at::kFloat) /
                   static_cast<double>(rotary_dim_);
  auto inv_freq = 1.0 / at::pow(base_, exponents);
  auto freqs = at::outer(positions.to(at::kFloat), inv_freq);
  auto angles = at::cat({freqs, freqs}, -1);
  return {angles.cos(), angles.sin()};
}

// The fused kernel on CUDA, its LibTorch twin (these ATen ops) elsewhere.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return kernels::apply_rotary(x, cos, sin);
}

}  // namespace strata
