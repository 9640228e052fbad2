#pragma once
// The chunked gated delta rule for training on the fused kernels: an autograd Function whose
// forward is gated_delta_chunk_forward_cuda and whose backward is gated_delta_chunk_backward_cuda
// reading the forward's intermediates, kept between the two (launch::gated_delta_chunk_workspace_bytes:
// about 1.8x the size of q, k and v together in bf16; recompute the layer, as activation recompute
// does, to trade that memory for time). Once differentiable: a double backward (create_graph) fails
// with a message saying so.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "strata/kernels/gated_delta_chunk_forward.h"

namespace strata::kernels {

// The fused training path is on unless STRATA_FUSED_GDN_BACKWARD=0, which keeps training on the
// differentiable LibTorch path (for a double backward, or to compare). Read per call.
bool gated_delta_chunk_fused_backward_enabled();

// Whether gated_delta_rule_chunked trains on the fused kernels: the switch is on, a gradient is
// recorded (grad mode on and some input requires grad), and the kernels take the inputs (as for
// the fused forward: bf16/fp16 v on CUDA, Dk = Dv = 128, chunks of 64, fused kernels enabled).
bool gated_delta_chunk_training_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& g, const at::Tensor& beta, int64_t chunk_size,
                                        const std::optional<at::Tensor>& initial_state);

// out and final_state as gated_delta_chunk_forward_cuda returns them, differentiable with respect
// to q, k, v, g, beta and initial_state (gradients in each input's dtype).
GatedDeltaChunkResult gated_delta_chunk_training(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const at::Tensor& g, const at::Tensor& beta,
                                                 const std::optional<at::Tensor>& initial_state,
                                                 const std::vector<int64_t>& document_bounds);

}  // namespace strata::kernels
