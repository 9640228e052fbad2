#pragma once
// Sinkhorn-Knopp projection of a batch of n x n score matrices onto doubly-stochastic matrices
// (rows and columns summing to 1), in DeepSeek-V4's convention (HF DeepseekV4HyperConnection,
// Megatron-Core's mHC):
//   M = softmax(logits, rows) + eps             the softmax is the first row normalisation
//   M = M / (column sums + eps)
//   repeat iters - 1 times: rows, then columns, each M = M / (sums + eps)
// so `iters` counts column normalisations. Rows and columns sum to 1 as far as the iterations
// have converged, at a rate set by the logits' spread: 20 iterations typically reach 1e-5 for
// logits of std 0.5 at n <= 8, std 2 needs far more. eps keeps every entry positive and every denominator
// away from zero.
#include <ATen/ATen.h>

#include <cstdint>

namespace strata {

// logits: [..., n, n] in log space. Backward keeps only `logits` between forward and backward
// (memory O(1) in `iters`): it reruns the iterations from them and differentiates that rerun,
// whose graph lives only for the duration of the backward call. float32 CUDA logits with
// n <= 8 run the CUDA kernels of kernels/sinkhorn.h instead, which do the same in registers.
at::Tensor sinkhorn_knopp(const at::Tensor& logits, int64_t iters, double eps);

// sinkhorn_knopp's LibTorch twin, whatever the device: the iterations as ATen ops under one
// autograd node that keeps only the logits (what sinkhorn_knopp runs where the kernels do not).
at::Tensor sinkhorn_knopp_reference(const at::Tensor& logits, int64_t iters, double eps);

// The same iterations as plain differentiable ops, so autograd stores every iteration. It is
// what sinkhorn_knopp's backward differentiates, and the reference its tests compare against.
at::Tensor sinkhorn_knopp_unrolled(const at::Tensor& logits, int64_t iters, double eps);

}  // namespace strata
