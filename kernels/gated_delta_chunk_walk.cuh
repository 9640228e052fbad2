#pragma once
// What the chunked gated delta rule's two sequential passes share (states: S over the chunks in
// order; backward states: dH in reverse). Value columns never mix in either walk, so each warp owns
// kWarpColumns value columns of one (segment, head) and walks the chunks alone, holding its columns
// of the key_dim x value_dim state transposed (kWarpColumns x key_dim, float32) in mma accumulators
// (mma_fragments.cuh). Every product of a step then takes the state, or what the step made from
// it, as an A operand built in registers, and no warp waits for another's columns: the chain of
// dependent steps, not throughput, bounds these passes, as they take the chunks one after another.
// A block's warps share the chunk's key-wide operands in shared memory, and the walking warps
// leave all global memory traffic to copy warps beside them (kCopyWarps): these copy each
// chunk's operands in a chunk ahead and write the walking warps' per-chunk results (staged in
// shared memory, two buffers) out a chunk behind, so the walking warps issue only the step's
// own work.
#include <cuda_pipeline.h>

#include "gated_delta_chunk.cuh"
#include "mma_fragments.cuh"

namespace strata::kernels::gdn::walk {

constexpr int kWalkWarps = 2;  // warps per block that walk the chunks
constexpr int kCopyWarps = 2;  // warps per block that copy
constexpr int kThreads = (kWalkWarps + kCopyWarps) * 32;
constexpr int kWarpColumns = 16;                       // value columns a warp owns
constexpr int kOutStride = bf16_stride<kWarpColumns>;  // a warp's rows staged on their way out

// A warp's kWarpColumns columns of a [kKeyDim, kValueDim] state, transposed, in the C layout:
// x[j][e] = state[key 8j + 2t + e % 2][column g + 8 (e / 2)] for lane 4g + t.
template <int kKeyDim, int kValueDim>
struct TransposedState {
  static constexpr int kKeyTiles = kKeyDim / 8, kKeySteps = kKeyDim / 16;
  float x[kKeyTiles][4];

  // From the float32 state at `from` (row stride kValueDim, at the warp's first column); zeros
  // when `from` is null.
  __device__ __forceinline__ void read(const float* from, int lane) {
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        x[j][e] = from != nullptr ? from[(8 * j + 2 * t + e % 2) * kValueDim + g + 8 * (e / 2)] : 0.0f;
  }

  __device__ __forceinline__ void write(float* to, int lane) const {
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) to[(8 * j + 2 * t + e % 2) * kValueDim + g + 8 * (e / 2)] = x[j][e];
  }

  // state^T += a rows: a, A operands of 16 of a chunk's tokens (kWarpColumns x 16), times those
  // tokens' rows ([16][kKeyDim] bfloat16 in shared memory, row stride kStride) as B's k.
  // (Forward: delta^T k_to_end; backward: dO^T (exp(G) q) and -d_delta^T W.)
  template <int kStride>
  __device__ __forceinline__ void add_product(const uint32_t (&a)[4], const bf16* rows, int lane) {
#pragma unroll
    for (int kb = 0; kb < kKeySteps; ++kb) {
      uint32_t b[4];
      mma::load_matrices_transposed(b, mma::quadrants_down(rows + 16 * kb, kStride, lane));
      mma::mma_bf16(x[2 * kb], a, b[0], b[1]);
      mma::mma_bf16(x[2 * kb + 1], a, b[2], b[3]);
    }
  }

  __device__ __forceinline__ void scale(float factor) {
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) x[j][e] *= factor;
  }

  // Rounded to bfloat16: the A operands of a product over the keys (k-step kk takes keys 16 kk ..
  // 16 kk + 15), and the same values staged untransposed, [kKeyDim][kOutStride], for
  // write_warp_rows.
  __device__ __forceinline__ void round(uint32_t (&a)[kKeySteps][4], bf16* staged, int lane) const {
#pragma unroll
    for (int kk = 0; kk < kKeySteps; ++kk) {
      mma::a_operand(a[kk], x[2 * kk], x[2 * kk + 1]);
      mma::store_matrices_transposed(mma::quadrants_across(staged + 16 * kk * kOutStride, kOutStride, lane), a[kk]);
    }
  }
};

// d += (state^T rounded) rows^T for a chunk's rows ([kChunk][kKeyDim] bfloat16 in shared memory,
// row stride kStride): `a` is round()'s A operands, d the C tiles of kChunk / 8 token columns.
// (Forward: S^T W^T; backward: dH^T k_to_end^T.)
template <int kKeyDim, int kStride>
__device__ __forceinline__ void add_state_times_rows(float (&d)[kChunk / 8][4], const uint32_t (&a)[kKeyDim / 16][4],
                                                     const bf16* rows, int lane) {
#pragma unroll
  for (int kk = 0; kk < kKeyDim / 16; ++kk)
#pragma unroll
    for (int tb = 0; tb < kChunk / 16; ++tb) {
      uint32_t b[4];
      mma::load_matrices(b, mma::quadrants_across(rows + 16 * tb * kStride + 16 * kk, kStride, lane));
      mma::mma_bf16(d[2 * tb], a[kk], b[0], b[1]);
      mma::mma_bf16(d[2 * tb + 1], a[kk], b[2], b[3]);
    }
}

// low / high = C tiles (16 value columns x 8 tokens each) of a product over one 16-token block of a
// chunk; adds, in the C layout, those tokens' rows of a [kChunk][kStride] bfloat16 slice of value
// columns (`block`: the block's first row, at the warp's first column), the product taken with
// `sign`: low, high = columns^T + sign (low, high). (Forward: delta^T = U^T - S^T W^T; backward:
// d_delta^T = dv_local^T + dH^T k_to_end^T.)
template <int kStride>
__device__ __forceinline__ void add_columns(float (&low)[4], float (&high)[4], const bf16* block, float sign,
                                            int lane) {
  uint32_t c[4];
  mma::load_matrices_transposed(c, mma::quadrants_across(block, kStride, lane));
  float* tiles[2] = {low, high};
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float* tile = tiles[half];
    tile[0] = mma::low_half(c[2 * half]) + sign * tile[0];
    tile[1] = mma::high_half(c[2 * half]) + sign * tile[1];
    tile[2] = mma::low_half(c[2 * half + 1]) + sign * tile[2];
    tile[3] = mma::high_half(c[2 * half + 1]) + sign * tile[3];
  }
}

// The walk's loop over `count` chunks, kStages of them in shared memory at once: the copy warps
// (`copier`) run prefetch(step, buffer) kStages - 1 steps ahead and write_out(step) of the results
// staged at a step once the next step has begun; the walking warps run step(step, buffer). One
// __syncthreads a step orders them: a step's operands are in place and the last step's results
// staged before any warp goes on, and every warp is done with the buffers refilled next.
template <int kStages, class Prefetch, class WriteOut, class Step>
__device__ __forceinline__ void walk_chunks(int count, bool copier, const Prefetch& prefetch, const WriteOut& write_out,
                                            const Step& step_of_walk) {
  if (copier)
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < count) prefetch(s, s);
      __pipeline_commit();  // empty groups too, so that every step waits for the same count
    }
  for (int step = 0; step < count; ++step) {
    if (copier) __pipeline_wait_prior(kStages - 2);
    __syncthreads();
    if (copier) {
      if (step + kStages - 1 < count) prefetch(step + kStages - 1, (step + kStages - 1) % kStages);
      __pipeline_commit();
      if (step > 0) write_out(step - 1);
    } else {
      step_of_walk(step, step % kStages);
    }
  }
  __syncthreads();  // the last step's results staged
  if (copier && count > 0) write_out(count - 1);
}

// A warp's kRows rows of kWarpColumns bfloat16, staged in shared memory (row stride kOutStride),
// out to `to` (row stride kValueDim), 16 bytes per lane at a time.
template <int kRows, int kValueDim>
__device__ __forceinline__ void write_warp_rows(const bf16* staged, bf16* to, int lane) {
  static_assert(kWarpColumns == 16, "two 16-byte pieces per row");
  __syncwarp();
  for (int e = lane; e < kRows * 2; e += 32) {
    const int row = e / 2, half = (e % 2) * 8;
    *reinterpret_cast<uint4*>(to + row * kValueDim + half) =
        *reinterpret_cast<const uint4*>(staged + row * kOutStride + half);
  }
  __syncwarp();
}

}  // namespace strata::kernels::gdn::walk
