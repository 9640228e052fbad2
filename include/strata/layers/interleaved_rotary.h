#pragma once
// RoPE in DeepSeek's interleaved layout on the *last* rotary_dim channels of each head: the pairs
// (x0, x1), (x2, x3), ... of that slice rotate as complex numbers, the leading channels pass
// through. DeepSeek-V4 uses it for its queries, its shared key/value head, its compressed
// entries and its indexer (HF DeepSeek-V4's apply_rotary_pos_emb); strata's other layers rotate
// halves (rotary.h). Unlike DeepSeek-V3.2 no row permutation can turn this into halves: V4's keys
// are also its values, and the output's rotation is undone per head before the output projection.
#include <ATen/ATen.h>

#include <utility>

#include "strata/core/rotary_scaling.h"

namespace strata {

class InterleavedRotary {
 public:
  // Errors name a bad rotary_dim or scaling field.
  InterleavedRotary(int64_t rotary_dim, double base, RotaryScaling scaling = {});

  // cos and sin [T, rotary_dim / 2] (one angle per pair), float32, for the positions in
  // `positions` [T] (int64), multiplied by the scaling's table scale.
  std::pair<at::Tensor, at::Tensor> tables(const at::Tensor& positions) const;

  int64_t rotary_dim() const { return rotary_dim_; }

 private:
  int64_t rotary_dim_;
  double base_;
  RotaryScaling scaling_;
  double table_scale_;
};

// Rotates the last 2 * cos.size(-1) channels of x [B, T, heads, D] by the tables [T, R/2] in
// float32; the result has x's dtype. Passing -sin undoes the rotation.
at::Tensor apply_interleaved_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace strata
