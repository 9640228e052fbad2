#pragma once
// mHC's per-token maps from the projection f [..., n (n + 2)] = [pre | post | res] columns
// (layers/hyper_connection.h has the formulas): each map's logits, and the post and res maps
// together, which run as one CUDA kernel forward and one backward (kernels/hc_maps.h) where it
// applies and as ATen ops (the twin) elsewhere.
#include <ATen/ATen.h>

#include <cstdint>

#include "strata/kernels/hc_maps.h"

namespace strata {

// One map's pre-activation, float32: scale[map] * f[..., offset : offset + size] + base[offset : offset + size].
at::Tensor hyper_connection_map_logits(const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale,
                                       int64_t map, int64_t offset, int64_t size);

// post = 2 sigmoid(logits of map 1) [..., n] and res = sinkhorn_knopp(logits of map 2) [..., n, n]:
// kernels::hc_post_res_maps where hc_post_res_maps_applies (float32 f on CUDA, n <= 8, kernels
// on), else the twin.
kernels::HcPostRes hyper_connection_post_res(const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale,
                                             int64_t n, int64_t sinkhorn_iterations, double eps);

// The twin in ATen ops on any device and dtype (Sinkhorn-Knopp's twin too).
kernels::HcPostRes hyper_connection_post_res_reference(const at::Tensor& f, const at::Tensor& base,
                                                       const at::Tensor& scale, int64_t n, int64_t sinkhorn_iterations,
                                                       double eps);

}  // namespace strata
