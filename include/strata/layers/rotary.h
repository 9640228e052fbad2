#pragma once
// Rotary position embedding (RoPE) in the "rotate half" layout HF and Megatron use: a head's
// first rotary_dim dimensions are split in two halves that rotate as complex pairs; the rest
// (partial rotary) pass through unchanged. A RotaryScaling (YaRN, ...) stretches the frequencies
// and may scale the tables (rotary_frequencies.h).
#include <ATen/ATen.h>

#include <utility>

#include "strata/core/rotary_scaling.h"

namespace strata {

class RotaryEmbedding {
 public:
  // Errors name a bad rotary_dim or scaling field.
  RotaryEmbedding(int64_t rotary_dim, double base, RotaryScaling scaling = {});

  // cos and sin tables [T, rotary_dim] for positions offset .. offset + T - 1, in float32, both
  // multiplied by the scaling's table scale.
  std::pair<at::Tensor, at::Tensor> tables(int64_t seq_len, int64_t offset, at::Device device) const;
  // The same for the positions in a [T] int64 tensor (on the tables' device): no host value, so a
  // captured CUDA graph computes the tables of whatever positions the tensor holds at replay.
  std::pair<at::Tensor, at::Tensor> tables(const at::Tensor& positions) const;

  int64_t rotary_dim() const { return rotary_dim_; }

 private:
  int64_t rotary_dim_;
  double base_;
  RotaryScaling scaling_;
  double table_scale_;
};

// Rotates x [B, T, heads, D] by the tables [T, R] (R <= D); the result has x's dtype.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace strata
