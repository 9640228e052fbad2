#pragma once
// What the passes of the chunked gated delta rule's backward share (launch::
// gated_delta_chunk_backward). Per chunk, with G the in-chunk cumulative gates, gamma = exp(G),
// Gamma = exp(G_last), S the state entering the chunk and H the state leaving it, the forward was
//   A = strictly_lower(diag(beta) (k k^T o E)), E_ij = exp(G_i - G_j),  T = (I + A)^-1,
//   W = T diag(beta gamma) k,  U = T diag(beta) v,  delta = U - W S,
//   O = diag(gamma) q S + (q k^T o E o causal) delta,  H = Gamma S + (diag(Gamma / gamma) k)^T delta.
// The backward reads the forward's arrays (G, W, T, delta, the entering states S), kept from the
// forward or recomputed by its prepare and states passes, then runs
//   local (gated_delta_chunk_backward_local.cu), one block per (row, head, chunk):
//     dv_local = (q k^T o E o causal)^T dO; gamma q and dO copied to bfloat16 chunk arrays;
//   states (gated_delta_chunk_backward_states.cu), a pair of warps per (segment, head, 16 value
//     columns), each with half of the keys, over the chunks in reverse, dH = dL/dH starting from
//     d_final_state:
//     dstates[c] = dH;  d_delta = dv_local + diag(Gamma / gamma) k dH;
//     dH = Gamma dH + (gamma q)^T dO - W^T d_delta;
//     d_initial_state = dH at the end;
//   gradients (gated_delta_chunk_backward_gradients.cu), one block per (row, head, chunk): dq, dk,
//     dv, dg and dbeta from the chunk's inputs, dO, delta, d_delta, S and dH.
// The organisation follows flash-linear-attention's chunk_gated_delta_rule_bwd.
#include "gated_delta_chunk.cuh"

namespace strata::kernels::gdn {

// The forward's arrays (kept or recomputed) and the backward's.
struct BackwardProblem {
  Problem forward;
  launch::GatedDeltaChunkBackward in;
  bf16* queries;   // [batch, heads, chunks, kChunk, key_dim]: exp(G) q, zero rows past the chunk
  bf16* d_out;     // [batch, heads, chunks, kChunk, value_dim]: dO, zero rows past the chunk
  bf16* d_delta;   // [batch, heads, chunks, kChunk, value_dim]: dv_local, then d_delta
  bf16* d_states;  // [batch, heads, chunks, key_dim, value_dim]: dL/dS as the chunk is left
};

BackwardProblem backward_problem_of(const launch::GatedDeltaChunkBackward& args);

void launch_backward_local(const BackwardProblem& p, cudaStream_t stream);
void launch_backward_states(const BackwardProblem& p, cudaStream_t stream);
void launch_backward_gradients(const BackwardProblem& p, cudaStream_t stream);

}  // namespace strata::kernels::gdn
