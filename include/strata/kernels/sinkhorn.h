#pragma once
// Sinkhorn-Knopp on CUDA: a warp lane per row of each n x n matrix (n <= launch::kMaxHyperStreams),
// the iterations in registers; the backward reruns them, keeping checkpoints of the
// normalisations' inputs in shared memory (in a scratch buffer when they do not fit). The LibTorch
// twin, and the op the layers call (which picks one of the two), is strata::sinkhorn_knopp in
// layers/sinkhorn.h.
#include <ATen/ATen.h>

#include <cstdint>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// Whether sinkhorn_cuda takes these logits: a float32 CUDA tensor [..., n, n] with
// n <= launch::kMaxHyperStreams, in a build with the kernels and with them not switched off.
bool sinkhorn_kernel_applies(const at::Tensor& logits);

at::Tensor sinkhorn_cuda(const at::Tensor& logits, int64_t iters, double eps);

}  // namespace strata::kernels
