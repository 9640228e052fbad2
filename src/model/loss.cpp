#include "strata/model/loss.h"

#include "strata/kernels/cross_entropy.h"

namespace strata {

// The fused kernels on CUDA (no float32 copy of the logits); elsewhere their twin, the shift and
// at::cross_entropy_loss in float32.
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  return kernels::causal_lm_cross_entropy(logits, labels);
}

}  // namespace strata
