#pragma once
// What the passes of the chunked gated delta rule's backward share (launch::
// gated_delta_chunk_backward). Per chunk, with G the in-chunk cumulative gates, gamma = exp(G),
// Gamma = exp(G_last), S the state entering the chunk and H the state leaving it, the forward was
//   A = strictly_lower(diag(beta) (k k^T o E)), E_ij = exp(G_i - G_j),  T = (I + A)^-1,
//   W = T diag(beta gamma) k,  U = T diag(beta) v,  delta = U - W S,
//   O = diag(gamma) q S + (q k^T o E o causal) delta,  H = Gamma S + (diag(Gamma / gamma) k)^T delta.
// The backward reads the forward's arrays (G, W, T, delta, k to the chunk's end, the entering
// states S), kept from the forward or recomputed by its prepare and states passes, then runs
//   local (gated_delta_chunk_backward_local.cu), one block per (row, head, chunk):
//     dv_local = (q k^T o E o causal)^T dO; gamma q and dO copied to bfloat16 chunk arrays;
//   states (gated_delta_chunk_backward_states.cu), a warp per (segment, head, 16 value columns),
//     over the chunks in reverse, dH = dL/dH starting from d_final_state:
//     dstates[c] = dH;  d_delta = dv_local + k_to_end dH;  dH = Gamma dH + (gamma q)^T dO - W^T d_delta;
//     d_initial_state = dH at the end;
//   gradients (gated_delta_chunk_backward_gradients.cu), one block per (row, head, chunk): dq, dk,
//     dv, dg and dbeta from the chunk's inputs, dO, delta, d_delta, S and dH.
// The organisation follows flash-linear-attention's chunk_gated_delta_rule_bwd.
#include <type_traits>

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

// acc += A B on one 16 x 16 output tile (ti, tj) over the inner tiles [k_first, k_last), bfloat16
// operands in shared memory. kTransposeA: A is given as A^T (row-major, leading dimension lda);
// kTransposeB: B is given as B^T.
template <bool kTransposeA, bool kTransposeB>
__device__ __forceinline__ void mma_tile(Accumulator& acc, const bf16* a, int lda, const bf16* b, int ldb, int ti,
                                         int tj, int k_first, int k_last) {
  using namespace nvcuda;
  // A^T row-major is A column-major (and likewise B): the transposes change the fragment layout
  // and which of (row tile, inner tile) steps by the leading dimension.
  using FragmentOfA = std::conditional_t<kTransposeA, FragmentAt, FragmentA>;
  using FragmentOfB = std::conditional_t<kTransposeB, FragmentBt, FragmentB>;
  for (int kk = k_first; kk < k_last; ++kk) {
    FragmentOfA fa;
    if constexpr (kTransposeA)
      wmma::load_matrix_sync(fa, a + kk * kTile * lda + ti * kTile, lda);
    else
      wmma::load_matrix_sync(fa, a + ti * kTile * lda + kk * kTile, lda);
    FragmentOfB fb;
    if constexpr (kTransposeB)
      wmma::load_matrix_sync(fb, b + tj * kTile * ldb + kk * kTile, ldb);
    else
      wmma::load_matrix_sync(fb, b + kk * kTile * ldb + tj * kTile, ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
}

// What a product may skip, by 16 x 16 blocks: nothing; the inner blocks where A is zero below its
// diagonal (upper triangular A, such as T^T); those where B is (upper triangular B); or the
// output tiles above the diagonal (left unwritten, for a caller that reads only the lower part).
enum class Structure { dense, upper_a, upper_b, lower_output };

// out = A B (rows x columns, inner dimension `inner`, all multiples of 16) into float32 shared
// memory, the output tiles shared out over the block's kWarps warps.
template <bool kTransposeA, bool kTransposeB, int kWarps>
__device__ __forceinline__ void product(float* out, int ldo, const bf16* a, int lda, const bf16* b, int ldb, int rows,
                                        int columns, int inner, Structure structure = Structure::dense) {
  using namespace nvcuda;
  const int warp = threadIdx.x / 32, column_tiles = columns / kTile;
  for (int t = warp; t < rows / kTile * column_tiles; t += kWarps) {
    const int ti = t / column_tiles, tj = t % column_tiles;
    if (structure == Structure::lower_output && tj > ti) continue;
    const int k_first = structure == Structure::upper_a ? ti : 0;
    const int k_last = structure == Structure::upper_b ? tj + 1 : inner / kTile;
    Accumulator acc;
    wmma::fill_fragment(acc, 0.0f);
    mma_tile<kTransposeA, kTransposeB>(acc, a, lda, b, ldb, ti, tj, k_first, k_last);
    wmma::store_matrix_sync(out + ti * kTile * ldo + tj * kTile, acc, ldo, wmma::mem_row_major);
  }
}

BackwardProblem backward_problem_of(const launch::GatedDeltaChunkBackward& args);

void launch_backward_local(const BackwardProblem& p, cudaStream_t stream);
void launch_backward_states(const BackwardProblem& p, cudaStream_t stream);
void launch_backward_gradients(const BackwardProblem& p, cudaStream_t stream);

}  // namespace strata::kernels::gdn
