#pragma once
// The chunked gated delta rule's backward as fused tensor-core CUDA kernels (launch::
// gated_delta_chunk_backward), on ATen tensors. The forward's intermediates are recomputed from
// the inputs; strata::kernels::gated_delta_chunk_training wraps forward and backward in an
// autograd Function.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace strata::kernels {

struct GatedDeltaChunkGradients {
  at::Tensor dq, dk;           // [B, T, Hk, Dk] (q's shape) in q's dtype
  at::Tensor dv;               // [B, T, H, Dv] in v's dtype
  at::Tensor dg, dbeta;        // [B, T, H] float32
  at::Tensor d_initial_state;  // [B or N, H, Dk, Dv] float32; undefined without initial_state
};

// The gradients of sum(d_out o out) + sum(d_final_state o final_state) for the fused forward's
// inputs (as gated_delta_chunk_forward_cuda takes them; gradient mode is ignored). d_out [B, T, H,
// Dv] is converted to v's dtype; d_final_state [B or N, H, Dk, Dv] to float32, zeros when absent.
// forward_workspace: the workspace gated_delta_chunk_forward_cuda returned for these very inputs,
// whose intermediates are then read rather than recomputed; undefined to recompute them.
GatedDeltaChunkGradients gated_delta_chunk_backward_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g, const at::Tensor& beta,
    const std::optional<at::Tensor>& initial_state, const std::vector<int64_t>& document_bounds,
    const at::Tensor& d_out, const std::optional<at::Tensor>& d_final_state, const at::Tensor& forward_workspace = {});

}  // namespace strata::kernels
