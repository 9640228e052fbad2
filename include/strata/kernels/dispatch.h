#pragma once
// When the fused ops run their CUDA kernels: in a -DSTRATA_CUDA=ON build, on CUDA tensors of a
// dtype the kernels handle (float32, bfloat16, float16), unless the environment sets
// STRATA_FUSED_KERNELS=0. Everywhere else they run their LibTorch twins. Also the small bridges
// from ATen to the raw launchers in launch.h.
#include <ATen/ATen.h>

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "strata/kernels/launch.h"

namespace strata::kernels {

// Whether this build has the CUDA kernels.
bool cuda_kernels_built();

// Whether a fused op given `t` (its main input) runs the CUDA kernel.
bool use_cuda_kernels(const at::Tensor& t);

// The launcher dtype code of `type`; `what` names the op and tensor in the error when the
// kernels do not handle it.
launch::Dtype launch_dtype(at::ScalarType type, const char* what);

// Leading dimensions of `t` with the last `trailing` dropped, followed by `tail`: the shape of
// an output that keeps an input's batch dimensions.
std::vector<int64_t> shape_with(const at::Tensor& t, int64_t trailing, std::initializer_list<int64_t> tail);

// The element strides of a [B, T, H, D] tensor's batch, position and head dimensions; 0 for a
// dimension of size 1, whose stride ATen leaves arbitrary and the kernels never step along (0
// also keeps it from spoiling the kernels' check that every row start is 16-byte aligned).
launch::RowStrides row_strides(const at::Tensor& t);

// The current CUDA stream of `device` (the stream ATen's own kernels run on); throws in a
// CPU-only build.
launch::Stream current_stream(at::Device device);

}  // namespace strata::kernels
