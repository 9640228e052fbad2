#pragma once
// The fused ops of mHC (manifold-constrained hyper-connections, layers/hyper_connection.h) over
// the residual streams [..., n, H]: the RMS-normalised projection that feeds the maps, the
// collapse of the streams into the sublayer input, and the combine of the streams with the
// sublayer output. Each has a LibTorch twin (what the CPU runs, and what the CUDA kernels are
// tested against) and CUDA kernels for n <= launch::kMaxHyperStreams.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// f [..., M] (float32) = rms_normalise(flat) @ weight^T, where rms_normalise divides each row of
// flat [..., D] by sqrt(mean(row^2) + eps) in float32 and weight is [M, D].
at::Tensor hc_project_reference(const at::Tensor& flat, const at::Tensor& weight, double eps);
// The same as rstd * (flat @ weight^T) with rstd from a one-pass kernel and the products in
// cuBLAS in flat's dtype (float32 accumulation; autocast does not apply), so no normalised copy
// of flat is written, in forward or backward.
at::Tensor hc_project_cuda(const at::Tensor& flat, const at::Tensor& weight, double eps);
at::Tensor hc_project(const at::Tensor& flat, const at::Tensor& weight, double eps);

// sum_j weights[..., j] streams[..., j, :] -> [..., H] in the streams' dtype; weights [..., n].
at::Tensor hc_collapse_reference(const at::Tensor& streams, const at::Tensor& weights);
at::Tensor hc_collapse_cuda(const at::Tensor& streams, const at::Tensor& weights);
at::Tensor hc_collapse(const at::Tensor& streams, const at::Tensor& weights);

// out[..., k, :] = sum_j res[..., j, k] streams[..., j, :] + post[..., k] branch[..., :]
// (res enters transposed): streams [..., n, H], branch [..., H], post [..., n], res [..., n, n];
// the result is in the promoted dtype of streams and branch.
at::Tensor hc_combine_reference(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                                const at::Tensor& res);
at::Tensor hc_combine_cuda(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                           const at::Tensor& res);
at::Tensor hc_combine(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                      const at::Tensor& res);

}  // namespace strata::kernels
