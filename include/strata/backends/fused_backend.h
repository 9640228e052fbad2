#pragma once
// The fused-CUDA backend, the one strata's models are built on: LocalBackend's builders, except
// that rms_norm() builds FusedRMSNorm, which runs the fused RMSNorm kernels on CUDA tensors of a
// -DSTRATA_CUDA=ON build and the kernels' LibTorch twin elsewhere. The twin is the RMSNorm layer's arithmetic, so on CPU a
// model built on this backend computes what one built on LocalBackend computes, bit for bit.
// (RoPE, SwiGLU and the loss are not backend kinds: the layers call kernels::apply_rotary,
// kernels::swiglu and kernels::causal_lm_cross_entropy on every backend.)
#include "strata/spec/args.h"
#include "strata/spec/backend.h"
#include "strata/spec/interfaces.h"

namespace strata {

class FusedRMSNorm : public NormModule {
 public:
  explicit FusedRMSNorm(const NormArgs& args);
  at::Tensor forward(const at::Tensor& x) override;

 private:
  at::Tensor weight_;
  double eps_;
  bool zero_centered_;
};

struct FusedBackend {
  Builder<slots::ColumnParallelLinear> column_parallel_linear() const;
  Builder<slots::RowParallelLinear> row_parallel_linear() const;
  Builder<slots::Norm> rms_norm() const;
  Builder<slots::Norm> layer_norm() const;
  Builder<slots::DotProductAttention> core_attention() const;
};

static_assert(check_backend<FusedBackend>());

}  // namespace strata
