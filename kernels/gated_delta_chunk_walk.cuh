#pragma once
// What the chunked gated delta rule's two sequential passes share (states: S over the chunks in
// order; backward states: dH in reverse). Value columns never mix in either walk, so each warp owns
// kWarpColumns value columns of one (segment, head) and walks the chunks alone, holding its columns
// of the key_dim x value_dim state transposed (kWarpColumns x key_dim, float32) in mma accumulators
// (mma_fragments.cuh). Every product of a step then takes the state, or what the step made from
// it, as an A operand built in registers, and no warp waits for another's columns: the chain of
// dependent steps, not throughput, bounds these passes, as they take the chunks one after another.
// A block's warps share the chunk's key-wide operands, copied into shared memory a chunk ahead.
#include "gated_delta_chunk.cuh"
#include "mma_fragments.cuh"

namespace strata::kernels::gdn::walk {

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
