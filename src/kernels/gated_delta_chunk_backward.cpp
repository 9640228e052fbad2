#include "strata/kernels/gated_delta_chunk_backward.h"

#include <c10/core/DeviceGuard.h>

#include "gated_delta_chunk_arguments.h"
#include "strata/core/error.h"

namespace strata::kernels {

GatedDeltaChunkGradients gated_delta_chunk_backward_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g, const at::Tensor& beta,
    const std::optional<at::Tensor>& initial_state, const std::vector<int64_t>& document_bounds,
    const at::Tensor& d_out, const std::optional<at::Tensor>& d_final_state, const at::Tensor& forward_workspace) {
  const auto fn = "gated_delta_chunk_backward_cuda";
  if (!cuda_kernels_built()) fail(fn, ": this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!gated_delta_chunk_kernels_take(q, k, v, g, beta, launch::kGatedDeltaChunk, initial_state))
    fail(fn, ": q ", q.sizes(), " (", q.scalar_type(), "), v ", v.sizes(), " (", v.scalar_type(), ") on ", v.device(),
         ": expected CUDA tensors on one device, v in bfloat16 or float16, q and k of one dtype (float32, bfloat16 or ",
         "float16) and Dk = Dv = 128");
  if (d_out.sizes() != v.sizes() || d_out.device() != v.device())
    fail(fn, ": d_out is ", d_out.sizes(), " on ", d_out.device(), "; expected v's shape ", v.sizes(), " on ",
         v.device());
  auto launch_args = gated_delta_chunk_arguments(fn, q, k, v, g, beta, initial_state, document_bounds);
  const auto& f = launch_args.args;
  const std::vector<int64_t> state_vector{f.segments, f.heads, f.key_dim, f.value_dim};
  const at::IntArrayRef state_shape(state_vector);  // a view of state_vector, which outlives it
  if (d_final_state && (d_final_state->sizes() != state_shape || d_final_state->device() != v.device()))
    fail(fn, ": d_final_state is ", d_final_state->sizes(), " on ", d_final_state->device(), "; expected ", state_shape,
         " on ", v.device());
  auto d_out_read = readable(d_out.to(v.scalar_type()));
  auto d_final = d_final_state ? d_final_state->to(at::kFloat).contiguous() : at::Tensor();
  const auto float_options = v.options().dtype(at::kFloat);
  GatedDeltaChunkGradients grads{at::empty({f.batch, f.seq, f.heads, f.key_dim}, q.options()),
                                 at::empty({f.batch, f.seq, f.heads, f.key_dim}, q.options()),
                                 at::empty({f.batch, f.seq, f.heads, f.value_dim}, v.options()),
                                 at::empty({f.batch, f.seq, f.heads}, float_options),
                                 at::empty({f.batch, f.seq, f.heads}, float_options),
                                 initial_state ? at::empty(state_shape, float_options) : at::Tensor()};
  // The forward's arrays: read where the forward kept them, else recomputed into fresh scratch.
  const int64_t forward_bytes =
      launch::gated_delta_chunk_workspace_bytes(f.batch, f.heads, f.chunks, f.key_dim, f.value_dim);
  const bool kept = forward_workspace.defined();
  if (kept && (forward_workspace.scalar_type() != at::kByte || !forward_workspace.is_contiguous() ||
               forward_workspace.numel() != forward_bytes || forward_workspace.device() != v.device()))
    fail(fn, ": forward_workspace is ", forward_workspace.scalar_type(), " ", forward_workspace.sizes(), " on ",
         forward_workspace.device(), "; expected the ", forward_bytes, " contiguous bytes on ", v.device(),
         " that gated_delta_chunk_forward_cuda returned for these inputs with keep_for_backward");
  auto forward_arrays = kept ? forward_workspace : at::empty({forward_bytes}, v.options().dtype(at::kByte));
  auto workspace = at::empty({launch::gated_delta_chunk_backward_workspace_bytes(f.batch, f.heads, f.chunks, f.segments,
                                                                                 f.key_dim, f.value_dim)},
                             v.options().dtype(at::kByte));
  launch::GatedDeltaChunkBackward args{
      .forward = f,
      .recompute = !kept,
      .workspace = workspace.data_ptr(),
      .d_out = d_out_read.data_ptr(),
      .d_out_strides = row_strides(d_out_read),
      .d_final_state = d_final.defined() ? d_final.data_ptr<float>() : nullptr,
      .dq = grads.dq.data_ptr(),
      .dk = grads.dk.data_ptr(),
      .dv = grads.dv.data_ptr(),
      .dg = grads.dg.data_ptr<float>(),
      .dbeta = grads.dbeta.data_ptr<float>(),
      .d_initial_state = initial_state ? grads.d_initial_state.data_ptr<float>() : nullptr};
  args.forward.workspace = forward_arrays.data_ptr();
  c10::DeviceGuard guard(v.device());
  launch::gated_delta_chunk_backward(args, current_stream(v.device()));
  if (f.key_heads < f.heads) {
    // The kernels write dq and dk per value head; a key head's are the sum over the value heads
    // that read it (what autograd gives repeat_interleave), in one pass each (ATen sums bfloat16
    // and float16 in float32 and rounds once).
    const auto per_key = f.heads / f.key_heads;
    const auto summed = [&](const at::Tensor& t) {
      return t.view({f.batch, f.seq, f.key_heads, per_key, f.key_dim}).sum(3);
    };
    grads.dq = summed(grads.dq);
    grads.dk = summed(grads.dk);
  }
  return grads;
}

}  // namespace strata::kernels
