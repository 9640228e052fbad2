#include "strata/backends/fused_backend.h"

#include "strata/backends/local_backend.h"
#include "strata/kernels/rms_norm.h"

namespace strata {

FusedRMSNorm::FusedRMSNorm(const NormArgs& args)
    : eps_(args.eps), zero_centered_(args.config->layernorm_zero_centered_gamma) {
  // The same parameter as RMSNorm's, so checkpoints and HF mappings do not see the backend.
  weight_ = register_parameter(
      "weight", zero_centered_ ? at::zeros({args.hidden_size}) : at::ones({args.hidden_size}));
}

at::Tensor FusedRMSNorm::forward(const at::Tensor& x) {
  return kernels::rms_norm(x, zero_centered_ ? weight_ + 1 : weight_, eps_);
}

Builder<slots::ColumnParallelLinear> FusedBackend::column_parallel_linear() const {
  return LocalBackend{}.column_parallel_linear();
}

Builder<slots::RowParallelLinear> FusedBackend::row_parallel_linear() const {
  return LocalBackend{}.row_parallel_linear();
}

Builder<slots::Norm> FusedBackend::rms_norm() const {
  return [](const NormArgs& args) { return std::make_shared<FusedRMSNorm>(args); };
}

Builder<slots::Norm> FusedBackend::layer_norm() const { return LocalBackend{}.layer_norm(); }

Builder<slots::DotProductAttention> FusedBackend::core_attention() const { return LocalBackend{}.core_attention(); }

}  // namespace strata
