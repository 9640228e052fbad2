#pragma once
// The chunked gated delta rule's state hand-off, the one part of it that is sequential over the
// sequence (gated_delta_rule.h has the whole rule). With chunk n's corrections written
// delta_n = U_n - W_n S_n (the UT transform), the state entering each chunk follows
//   S_0 = initial,   S_{n+1} = decay_n S_n + K_n^T delta_n
// where K_n holds chunk n's keys decayed to the chunk's end and decay_n the whole chunk's decay.
// Everything else in the rule is a product inside one chunk, batched over all chunks.
//
// Forward and backward are the same scan (kernels/chunk_state_scan.h): the backward carries
// dL/dS from the last chunk down, with W and K trading places. It runs as a CUDA kernel on float32
// CUDA tensors and as its LibTorch twin (a loop over chunks) elsewhere, or with
// STRATA_FUSED_KERNELS=0.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "strata/kernels/chunk_state_scan.h"

namespace strata {

struct DeltaRuleChunkStates {
  at::Tensor entering;     // [B, H, N, Dk, Dv]: S_n, the state as chunk n starts
  at::Tensor delta;        // [B, H, N, C, Dv]: delta_n, the corrections chunk n writes
  at::Tensor final_state;  // [B, H, Dk, Dv] ([S, B, H, Dk, Dv] with segments): S_N, or each segment's last
};

// U [B, H, N, C, Dv], W and k_to_end [B, H, N, C, Dk], chunk_decay [B, H, N], initial
// [B, H, Dk, Dv], all of one floating dtype. Differentiable in every input (first order).
// tf32_products: the backward's two gradient products (W's and k_to_end's) run on TF32 tensor
// cores (tf32_matmul.h), for a rule whose output is bf16 or fp16 anyway; the scan itself stays
// float32.
// chunk_offsets (packed documents): S + 1 offsets from 0 to N, segment s the chunks
// chunk_offsets[s] .. chunk_offsets[s + 1] - 1 of every (B, H); the state restarts from initial[s]
// (then [S, B, H, Dk, Dv]) at each segment's first chunk, and final_state[s] is the state after
// its last. Empty: one sequence per (B, H).
DeltaRuleChunkStates delta_rule_chunk_states(const at::Tensor& U, const at::Tensor& W, const at::Tensor& k_to_end,
                                             const at::Tensor& chunk_decay, const at::Tensor& initial,
                                             bool tf32_products = false,
                                             const std::vector<int64_t>& chunk_offsets = {});

// The scan as a loop over chunks in differentiable ATen ops: the kernel's twin.
kernels::ChunkScanResult chunk_state_scan_reference(const kernels::ChunkScanInputs& in);

}  // namespace strata
