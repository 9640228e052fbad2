#pragma once
// The chunked gated delta rule's forward as fused tensor-core CUDA kernels (launch::
// gated_delta_chunk_forward), on ATen tensors: inference and prefill, where no gradient is
// recorded. strata::gated_delta_rule_chunked runs it where gated_delta_chunk_forward_applies;
// training runs it with the fused backward (gated_delta_chunk_training.h) under
// STRATA_FUSED_GDN_BACKWARD=1, and the differentiable LibTorch path otherwise.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

struct GatedDeltaChunkResult {
  at::Tensor out;          // [B, T, H, Dv] in v's dtype
  at::Tensor final_state;  // [B, H, Dk, Dv] ([N, H, Dk, Dv] for packed documents), float32
  // The forward's intermediates (bytes; launch::gated_delta_chunk_workspace_bytes), which
  // gated_delta_chunk_backward_cuda reads instead of recomputing them when handed back.
  at::Tensor workspace;
};

// Whether the fused forward takes these inputs (shapes as gated_delta_rule_chunked checks them):
// CUDA tensors on one device with use_cuda_kernels(v), v in bfloat16 or float16 (float32 and
// float64 runs keep the exact LibTorch products), q and k of one dtype among float32, bfloat16
// and float16 whose number of heads divides v's, floating g, beta and initial_state, chunk_size
// launch::kGatedDeltaChunk, head sizes within launch::gated_delta_chunk_fits, and no gradient to
// record (no backward).
bool gated_delta_chunk_forward_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const at::Tensor& g, const at::Tensor& beta, int64_t chunk_size,
                                       const std::optional<at::Tensor>& initial_state);

// The fused forward. q, k [B, T, Hk, Dk] and v [B, T, H, Dv] (H a multiple of Hk: value heads
// h r .. h r + r - 1 read key head h, r = H / Hk) are read in place where their last dimension is
// contiguous and their rows 16-byte aligned (otherwise copied first); g is widened to float32, beta
// read in its dtype (float32, bfloat16 or float16; others widened). document_bounds: packed
// documents' cu_seqlens as read on the host (B = 1), empty for none; initial_state [B or N, H, Dk,
// Dv], zeros when absent. keep_for_backward: the workspace keeps every intermediate the
// backward reads (training); without it the forward skips writing those only the backward needs.
GatedDeltaChunkResult gated_delta_chunk_forward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                     const at::Tensor& g, const at::Tensor& beta,
                                                     const std::optional<at::Tensor>& initial_state,
                                                     const std::vector<int64_t>& document_bounds,
                                                     bool keep_for_backward = false);

}  // namespace strata::kernels
