#include "strata/layers/block_diagonal_linear.h"

#include "strata/core/error.h"

namespace strata {

BlockDiagonalLinear::BlockDiagonalLinear(int64_t groups, int64_t input_size, int64_t output_size, double init_std)
    : groups_(groups), input_size_(input_size), output_size_(output_size) {
  if (groups <= 0 || input_size <= 0 || output_size <= 0)
    fail("block-diagonal linear: groups = ", groups, ", input_size = ", input_size, ", output_size = ", output_size,
         ": expected positive sizes");
  weight_ = register_parameter("weight", at::randn({groups * output_size, input_size}) * init_std);
}

at::Tensor BlockDiagonalLinear::forward(const at::Tensor& x) {
  if (x.dim() < 2 || x.size(-2) != groups_ || x.size(-1) != input_size_)
    fail("block-diagonal linear: input of shape ", x.sizes(), ", expected [..., ", groups_, ", ", input_size_, "]");
  // [N, groups, in] as [groups, N, in] times [groups, in, out].
  auto lead = x.sizes().slice(0, x.dim() - 2).vec();
  auto rows = x.reshape({-1, groups_, input_size_}).transpose(0, 1);
  auto weights = weight_.view({groups_, output_size_, input_size_}).transpose(1, 2);
  auto y = at::bmm(rows, weights).transpose(0, 1);  // [N, groups, out]
  lead.push_back(groups_ * output_size_);
  return y.reshape(lead);
}

}  // namespace strata
