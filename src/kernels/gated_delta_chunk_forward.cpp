#include "strata/kernels/gated_delta_chunk_forward.h"

#include <ATen/core/grad_mode.h>
#include <c10/core/DeviceGuard.h>

#include "gated_delta_chunk_arguments.h"
#include "strata/core/error.h"

namespace strata::kernels {

bool gated_delta_chunk_forward_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const at::Tensor& g, const at::Tensor& beta, int64_t chunk_size,
                                       const std::optional<at::Tensor>& initial_state) {
  if (!gated_delta_chunk_kernels_take(q, k, v, g, beta, chunk_size, initial_state)) return false;
  if (at::GradMode::is_enabled()) {
    for (const auto* t : {&q, &k, &v, &g, &beta})
      if (t->requires_grad()) return false;
    if (initial_state && initial_state->requires_grad()) return false;
  }
  return true;
}

GatedDeltaChunkResult gated_delta_chunk_forward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                     const at::Tensor& g, const at::Tensor& beta,
                                                     const std::optional<at::Tensor>& initial_state,
                                                     const std::vector<int64_t>& document_bounds,
                                                     bool keep_for_backward) {
  const auto fn = "gated_delta_chunk_forward_cuda";
  if (!cuda_kernels_built()) fail(fn, ": this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!gated_delta_chunk_forward_applies(q, k, v, g, beta, launch::kGatedDeltaChunk, initial_state))
    fail(fn, ": q ", q.sizes(), " (", q.scalar_type(), "), v ", v.sizes(), " (", v.scalar_type(), ") on ", v.device(),
         ": expected CUDA tensors on one device, v in bfloat16 or float16, q and k of one dtype (float32, bfloat16 or ",
         "float16), Dk = Dv = 128, and no gradient to record");
  auto launch_args = gated_delta_chunk_arguments(fn, q, k, v, g, beta, initial_state, document_bounds);
  auto& args = launch_args.args;
  GatedDeltaChunkResult result{
      at::empty({args.batch, args.seq, args.heads, args.value_dim}, v.options()),
      at::empty({args.segments, args.heads, args.key_dim, args.value_dim}, v.options().dtype(at::kFloat)),
      at::empty({launch::gated_delta_chunk_workspace_bytes(args.batch, args.heads, args.chunks, args.key_dim,
                                                           args.value_dim)},
                v.options().dtype(at::kByte))};
  args.out = result.out.data_ptr();
  args.final_state = result.final_state.data_ptr<float>();
  args.workspace = result.workspace.data_ptr();
  args.keep_for_backward = keep_for_backward;
  c10::DeviceGuard guard(v.device());
  launch::gated_delta_chunk_forward(args, current_stream(v.device()));
  return result;
}

}  // namespace strata::kernels
