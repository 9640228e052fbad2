#pragma once
// mHC's post and res maps (layers/hyper_connection.h has the formulas) from the projection f, as
// one autograd node on CUDA: one kernel forward (the post sigmoid, the res logits and their
// Sinkhorn-Knopp in registers) and one backward (plus a small one that sums the per-block partial
// sums of the base and scale gradients in a fixed order, so the results are deterministic). The
// LibTorch twin, and the op the layers call (which picks one of the two), is
// strata::hyper_connection_post_res in layers/hyper_connection_maps.h.
#include <ATen/ATen.h>

#include <cstdint>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

struct HcPostRes {
  at::Tensor post;  // [..., n], float32
  at::Tensor res;   // [..., n, n], float32
};

// Whether hc_post_res_maps takes f for n streams: a float32 CUDA tensor [..., n (n + 2)] with
// 1 <= n <= launch::kMaxHyperStreams, in a build with the kernels and with them not switched off.
bool hc_post_res_maps_applies(const at::Tensor& f, int64_t n);

// f [..., n (n + 2)] (float32, CUDA; its pre columns 0..n are not read), base [n (n + 2)] and
// scale [3] (any floating dtype; the kernels read them as float32):
//   post = 2 sigmoid(scale[1] f[..., n:2n] + base[n:2n])
//   res  = sinkhorn_knopp((scale[2] f[..., 2n:] + base[2n:]).unflatten(-1, {n, n}), iters, eps)
// Gradients reach f (zero in its pre columns), base and scale (in their dtypes).
HcPostRes hc_post_res_maps(const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale, int64_t n,
                           int64_t iters, double eps);

}  // namespace strata::kernels
