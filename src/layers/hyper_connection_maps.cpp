#include "strata/layers/hyper_connection_maps.h"

#include "strata/layers/sinkhorn.h"

namespace strata {

at::Tensor hyper_connection_map_logits(const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale,
                                       int64_t map, int64_t offset, int64_t size) {
  return f.narrow(-1, offset, size) * scale.to(at::kFloat)[map] + base.to(at::kFloat).narrow(0, offset, size);
}

kernels::HcPostRes hyper_connection_post_res_reference(const at::Tensor& f, const at::Tensor& base,
                                                       const at::Tensor& scale, int64_t n, int64_t sinkhorn_iterations,
                                                       double eps) {
  auto post = 2 * at::sigmoid(hyper_connection_map_logits(f, base, scale, 1, n, n));
  auto res = sinkhorn_knopp_reference(
      hyper_connection_map_logits(f, base, scale, 2, 2 * n, n * n).unflatten(-1, {n, n}), sinkhorn_iterations, eps);
  return {post, res};
}

kernels::HcPostRes hyper_connection_post_res(const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale,
                                             int64_t n, int64_t sinkhorn_iterations, double eps) {
  if (kernels::hc_post_res_maps_applies(f, n))
    return kernels::hc_post_res_maps(f, base, scale, n, sinkhorn_iterations, eps);
  return hyper_connection_post_res_reference(f, base, scale, n, sinkhorn_iterations, eps);
}

}  // namespace strata
