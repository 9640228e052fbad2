#pragma once
// mHC's half boundary as one op (layers/hyper_connection.h has the maps): half i's combine fused
// with half i+1's projection and collapse,
//   streams' = res^T streams + post (x) branch                       (half i's combine)
//   f        = rstd(streams') * (streams' flattened @ fn^T)           (half i+1's projection)
//   pre      = sigmoid(scale[0] f[..., :n] + base[:n]) + eps          (half i+1's pre map)
//   x_next   = sum_j pre_j streams'_j                                 (half i+1's sublayer input)
// with a hand-written backward. Unfused, autograd sums the three gradients that reach streams'
// (later halves, the projection, the collapse) with stream-sized float32 adds and each op reads
// the streams again; here the backward adds them in the pass that also runs the combine's
// backward, so streams' and its gradient are each read once there (plus the projection's GEMMs).
// The next half's post and res maps come from f outside this op (small per-token tensors).
//
// Runs the CUDA kernels (kernels/hc_boundary.cu) where hc_combine would, else the twin in ATen ops:
// the same autograd node with its forward and backward written in ATen (what the CPU runs), whose
// forward gives bitwise the values of the unfused hc_* twins.
#include <ATen/ATen.h>

namespace strata::kernels {

// What the boundary needs of the next half's maps.
struct HcNextMaps {
  at::Tensor fn;     // [M, n * H], M = 2n + n * n
  at::Tensor base;   // [M]
  at::Tensor scale;  // [3]: pre, post, res
  double norm_eps;   // the projection's RMS epsilon
  double eps;        // pre's floor
};

struct HcBoundary {
  at::Tensor streams;     // streams' [..., n, H], the promoted dtype of streams and branch
  at::Tensor next_input;  // x_next [..., H], streams' dtype
  at::Tensor projection;  // f [..., M], float32 (the next half's post and res come from it)
};

// streams [..., n, H], branch [..., H], post [..., n], res [..., n, n].
HcBoundary hc_boundary(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                       const at::Tensor& res, const HcNextMaps& next);

// The same from the unfused ops (hc_combine, hc_project, hc_collapse) under autograd: what the
// fused op replaces and is tested against.
HcBoundary hc_boundary_unfused(const at::Tensor& streams, const at::Tensor& branch, const at::Tensor& post,
                               const at::Tensor& res, const HcNextMaps& next);

}  // namespace strata::kernels
