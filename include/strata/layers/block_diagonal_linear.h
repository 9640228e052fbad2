#pragma once
// A linear layer applied per group with a weight of its own (a block-diagonal weight): DeepSeek-V4's
// grouped output projection (HF's DeepseekV4GroupedLinear, o_a_proj) maps each group of attention
// heads to a low-rank vector before one dense projection mixes the groups.
//   x [..., groups, in] -> [..., groups * out], group g through weight rows [g * out, (g + 1) * out)
// Parameter: weight [groups * out, in], HF's layout.
#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace strata {

class BlockDiagonalLinear : public torch::nn::Module {
 public:
  // Errors name a non-positive size.
  BlockDiagonalLinear(int64_t groups, int64_t input_size, int64_t output_size, double init_std);

  at::Tensor forward(const at::Tensor& x);

 private:
  int64_t groups_, input_size_, output_size_;
  at::Tensor weight_;
};

}  // namespace strata
