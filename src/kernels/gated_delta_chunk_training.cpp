#include "strata/kernels/gated_delta_chunk_training.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdlib>
#include <string>

#include "gated_delta_chunk_arguments.h"
#include "strata/core/error.h"
#include "strata/kernels/gated_delta_chunk_backward.h"

namespace strata::kernels {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class GatedDeltaChunkFunction : public torch::autograd::Function<GatedDeltaChunkFunction> {
 public:
  // initial_state empty for zeros; document_bounds empty without packed documents. The initial
  // state is a c10::optional (std::optional in LibTorch 2) because apply() records every
  // at::Tensor argument as an input, and LibTorch 2 refuses an undefined one ("tensor does not
  // have a device"); an empty optional is no input.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& g, const at::Tensor& beta,
                               const c10::optional<at::Tensor>& initial_state, std::vector<int64_t> document_bounds) {
    const auto initial = initial_state ? std::optional<at::Tensor>(*initial_state) : std::nullopt;
    // The forward's intermediates stay for the backward, which then skips recomputing them.
    auto result = gated_delta_chunk_forward_cuda(q, k, v, g, beta, initial, document_bounds, true);
    ctx->save_for_backward({q, k, v, g, beta, initial ? *initial : at::Tensor(), result.workspace});
    ctx->saved_data["document_bounds"] = document_bounds;
    return {result.out, result.final_state};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (at::GradMode::is_enabled())
      fail(
          "gated_delta_chunk_training: a double backward (create_graph = true) was asked for; the fused backward "
          "kernels are differentiable once only. Set STRATA_FUSED_GDN_BACKWARD=0 to train on the differentiable "
          "LibTorch path");
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &g = saved[3], &beta = saved[4], &initial = saved[5],
               &forward_workspace = saved[6];
    const auto bounds = ctx->saved_data["document_bounds"].toIntVector();
    const auto d_out = grads[0].defined() ? grads[0] : at::zeros_like(v);
    const auto d_final = grads[1].defined() ? std::optional<at::Tensor>(grads[1]) : std::nullopt;
    auto result = gated_delta_chunk_backward_cuda(q, k, v, g, beta,
                                                  initial.defined() ? std::optional<at::Tensor>(initial) : std::nullopt,
                                                  bounds, d_out, d_final, forward_workspace);
    return {result.dq,
            result.dk,
            result.dv,
            result.dg.to(g.scalar_type()),
            result.dbeta.to(beta.scalar_type()),
            initial.defined() ? result.d_initial_state.to(initial.scalar_type()) : at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

bool gated_delta_chunk_fused_backward_enabled() {
  const char* value = std::getenv("STRATA_FUSED_GDN_BACKWARD");
  return value == nullptr || std::string(value) != "0";
}

bool gated_delta_chunk_training_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& g, const at::Tensor& beta, int64_t chunk_size,
                                        const std::optional<at::Tensor>& initial_state) {
  if (!gated_delta_chunk_fused_backward_enabled() || !at::GradMode::is_enabled()) return false;
  bool recorded = initial_state && initial_state->requires_grad();
  for (const auto* t : {&q, &k, &v, &g, &beta}) recorded = recorded || t->requires_grad();
  return recorded && gated_delta_chunk_kernels_take(q, k, v, g, beta, chunk_size, initial_state);
}

GatedDeltaChunkResult gated_delta_chunk_training(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const at::Tensor& g, const at::Tensor& beta,
                                                 const std::optional<at::Tensor>& initial_state,
                                                 const std::vector<int64_t>& document_bounds) {
  const auto fn = "gated_delta_chunk_training";
  if (!cuda_kernels_built()) fail(fn, ": this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!gated_delta_chunk_kernels_take(q, k, v, g, beta, launch::kGatedDeltaChunk, initial_state))
    fail(fn, ": q ", q.sizes(), " (", q.scalar_type(), "), v ", v.sizes(), " (", v.scalar_type(), ") on ", v.device(),
         ": expected CUDA tensors on one device, v in bfloat16 or float16, q and k of one dtype (float32, bfloat16 or ",
         "float16) and Dk = Dv = 128");
  const auto initial = initial_state ? c10::optional<at::Tensor>(*initial_state) : c10::nullopt;
  auto outputs = GatedDeltaChunkFunction::apply(q, k, v, g, beta, initial, document_bounds);
  return {outputs[0], outputs[1]};
}

}  // namespace strata::kernels
