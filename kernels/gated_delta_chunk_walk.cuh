#pragma once
// What the chunked gated delta rule's two sequential passes share (states: S over the chunks in
// order; backward states: dH in reverse). Value columns never mix in either walk, so a pair of
// warps owns kWarpColumns value columns of one (segment, head) and walks the chunks alone, holding
// its columns of the key_dim x value_dim state transposed (kWarpColumns x key_dim, float32) in mma
// accumulators (mma_fragments.cuh), split by keys: warp `half` of the pair holds keys
// half * key_dim / 2 onwards. Every product of a step takes the state, or what the step made from
// it, as an A operand built in registers, and no pair waits for another's columns. The chain of
// dependent steps, not throughput, bounds these passes, as they take the chunks one after another;
// the key split halves each warp's part of a step and gives a block four walking warps, one for
// each of an SM's four schedulers (one block an SM at B = 1, H = 32):
//   - the product over the keys (S^T W^T; backward dH^T k^T) takes half of the chunk's
//     tokens per warp, over all keys: the warp's own key half from registers, the other half as
//     the other warp rounded and staged it for the write-out (read back with ldmatrix after a
//     barrier of the pair alone). No float32 partial sums cross warps.
//   - the update over the tokens (S^T += delta^T k, delta decayed to the chunk's end; backward
//     likewise) keeps keys apart: each warp updates its own key half with its own tokens' delta
//     first, then the other's, staged likewise, after a second pair barrier.
// The bfloat16 roundings are the one-warp walk's (S or dH for the first product, delta or d_delta
// for the update); only the float32 order of the sums differs, each warp taking its own half first.
// Each warp issues its own half's products before it meets the other (over_pair_halves), so that
// the barrier's wait overlaps products in flight. A block's warps share the chunk's key-wide
// operands in shared memory, and the walking warps leave all global memory traffic but a few of
// the chunk's gates to copy warps beside them (two per walking warp, so that the copies spread
// over the schedulers as evenly as the walk does): these copy each chunk's operands in
// kStages - 1 chunks ahead (two: with one, a step still waited on memory; 0.123 -> 0.105 ms for
// the forward walk at T = 4096 on an H100) and write the walking warps' per-chunk results (staged
// in shared memory, two buffers) out a chunk behind, so the walking warps issue only the step's
// own work. A step ends at a barrier of the whole block, so it lasts as long as the slower group's
// part: with one copy warp a walking warp, the copy warps' part was the longer (walking without
// copying anything took as long), and with two the forward walk at T = 4096 went from 0.106 to
// 0.078 ms and the backward reading the forward's arrays, of which only the walk changed, from
// 0.585 to 0.523 (standalone, H100, 2026-12-07; through LibTorch the forward gained only 3-4% on
// 2026-12-08, docs/performance.md). Copy warp w writes out walking warp w's results; those past
// the walking warps only copy.
#include <cuda_pipeline.h>

#include "gated_delta_chunk.cuh"
#include "mma_fragments.cuh"

namespace strata::kernels::gdn::walk {

constexpr int kWalkWarps = 4;  // warps per block that walk the chunks: two pairs
constexpr int kCopyWarps = 2 * kWalkWarps;  // warps per block that copy
constexpr int kThreads = (kWalkWarps + kCopyWarps) * 32;
constexpr int kWarpColumns = 16;                         // value columns a warp (and its pair) holds
constexpr int kColumns = kWalkWarps / 2 * kWarpColumns;  // value columns a block owns
constexpr int kWarpTokens = kChunk / 2;                  // a chunk's tokens a warp takes in the product over the keys
constexpr int kOutStride = bf16_stride<kWarpColumns>;    // a warp's rows staged on their way out

// A walking warp's place: the pair (`pair`) that shares its value columns, and which half of the
// keys (and of a chunk's tokens in the product over the keys) it takes (`half`).
struct Seat {
  int pair, half;

  __device__ __forceinline__ explicit Seat(int warp) : pair(warp / 2), half(warp % 2) {}

  // Waits for the other warp of the pair only (bar.sync on a named barrier; id 0 is __syncthreads').
  __device__ __forceinline__ void sync() const { __barrier_sync_count(1 + pair, 64); }
};

// A operands of kSteps k-steps (16 x 16 each) staged untransposed, as [16 kSteps][kOutStride] rows
// of k (what write_warp_rows writes out), and read back from there by the other warp of a pair.
template <int kSteps>
__device__ __forceinline__ void stage_operands(bf16* staged, const uint32_t (&a)[kSteps][4], int lane) {
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk)
    mma::store_matrices_transposed(mma::quadrants_across(staged + 16 * kk * kOutStride, kOutStride, lane), a[kk]);
}
template <int kSteps>
__device__ __forceinline__ void load_staged_operands(uint32_t (&a)[kSteps][4], const bf16* staged, int lane) {
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk)
    mma::load_matrices_transposed(a[kk], mma::quadrants_across(staged + 16 * kk * kOutStride, kOutStride, lane));
}

// A warp's half of a pair's transposed state: kWarpColumns columns of kKeys key rows of a
// [key_dim, kValueDim] state, in the C layout: x[j][e] = state[key 8j + 2t + e % 2 of the half]
// [column g + 8 (e / 2)] for lane 4g + t.
template <int kKeys, int kValueDim>
struct TransposedState {
  static constexpr int kKeyTiles = kKeys / 8, kKeySteps = kKeys / 16;
  float x[kKeyTiles][4];

  // From the float32 state at `from` (row stride kValueDim, at the half's first key and the
  // pair's first column); zeros when `from` is null.
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
  // tokens' rows ([16][key_dim] bfloat16 in shared memory, row stride kStride, `rows` at the
  // half's first key) as B's k. (Forward: decayed delta^T k; backward: dO^T (exp(G) q) and
  // -d_delta^T W.)
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

  // Rounded to bfloat16: the A operands of a product over the half's keys (k-step kk takes its
  // keys 16 kk .. 16 kk + 15), staged as well ([kKeys][kOutStride]) for write_warp_rows and the
  // other warp of the pair.
  __device__ __forceinline__ void round(uint32_t (&a)[kKeySteps][4], bf16* staged, int lane) const {
#pragma unroll
    for (int kk = 0; kk < kKeySteps; ++kk) mma::a_operand(a[kk], x[2 * kk], x[2 * kk + 1]);
    stage_operands(staged, a, lane);
  }
};

// Runs add(a, step) over the k-steps of a product whose A operand a pair holds in halves of kSteps
// k-steps each: this warp's (`own`, steps half * kSteps onwards) first, then, once the pair has
// met, the other warp's, read back from where it staged them (`other_staged`, stage_operands).
// The products of the warp's own half are in flight while it waits for the other warp.
template <int kSteps, class Add>
__device__ __forceinline__ void over_pair_halves(const uint32_t (&own)[kSteps][4], const bf16* other_staged, Seat seat,
                                                 int lane, const Add& add) {
#pragma unroll
  for (int i = 0; i < kSteps; ++i) add(own[i], seat.half * kSteps + i);
  seat.sync();
  uint32_t other[kSteps][4];
  load_staged_operands(other, other_staged, lane);
#pragma unroll
  for (int i = 0; i < kSteps; ++i) add(other[i], (1 - seat.half) * kSteps + i);
}

// d += a rows^T for one k-step: a, the A operands of 16 keys (the state's, rounded), times the
// rows ([kTiles * 8][key_dim] bfloat16 in shared memory, row stride kStride, `rows` at the
// k-step's first key) as B's columns; d, the C tiles of kTiles * 8 token columns. (Forward:
// S^T W^T; backward: dH^T k^T.)
template <int kStride, int kTiles>
__device__ __forceinline__ void add_times_rows(float (&d)[kTiles][4], const uint32_t (&a)[4], const bf16* rows,
                                               int lane) {
#pragma unroll
  for (int tb = 0; tb < kTiles / 2; ++tb) {
    uint32_t b[4];
    mma::load_matrices(b, mma::quadrants_across(rows + 16 * tb * kStride, kStride, lane));
    mma::mma_bf16(d[2 * tb], a, b[0], b[1]);
    mma::mma_bf16(d[2 * tb + 1], a, b[2], b[3]);
  }
}

// low / high = C tiles (16 value columns x 8 tokens each) of a product over one 16-token block of a
// chunk; adds, in the C layout, those tokens' rows of a [kChunk][kStride] bfloat16 slice of value
// columns (`block`: the block's first row, at the pair's first column), the product taken with
// `sign`: low, high = columns^T + sign (low, high). (Forward: delta^T = U^T - S^T W^T; backward:
// d_delta^T = dv_local^T + (dH^T k^T decayed to the chunk's end).)
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

// Key head `key_head`'s keys of the chunks of row b, each as bfloat16 rows in shared memory (row
// stride bf16_stride<kKeyDim>), zeros past the chunk's tokens: read in place from k (dtype QK) by
// kThreads copying threads (`thread`: this one's index among them). The walks take the keys as
// they are and decay the corrections to the chunk's end instead (DecayToEnd), so that no pass
// writes the keys out decayed. bfloat16 keys go as asynchronous copies with the chunk's other
// operands; float32 keys pass through registers to be narrowed, and are loaded a step before they
// are stored (the next chunk's loads issued as this one's are stored), so that their latency
// passes during a step of the walk rather than holding the copy warps at the step's barrier
// (0.104 -> 0.165 ms for the forward walk at T = 4096 on an H100 when they were loaded and
// stored at once).
template <class QK, int kKeyDim, int kThreads>
class KeyStager {
 public:
  __device__ __forceinline__ KeyStager(const launch::GatedDeltaChunkForward& in, int b, int key_head, int thread)
      : in_(in), b_(b), key_head_(key_head), thread_(thread) {}

  // Chunk c's keys into `to`; `next` (or -1) is the chunk the walk stages after c.
  __device__ __forceinline__ void stage(int c, int next, bf16* to) {
    if constexpr (std::is_same_v<QK, bf16>) {
      stage_head_rows<QK, kKeyDim, kThreads>(in_.k, in_.k_strides, b_, chunk_span(in_, c), key_head_, to, thread_);
    } else {
      if (loaded_ != c) load(c);
      rows_.store(to, thread_);
      if (next >= 0) load(next);
    }
  }

 private:
  __device__ __forceinline__ void load(int c) {
    const ChunkSpan span = chunk_span(in_, c);
    rows_.load(head_rows<QK>(in_.k, in_.k_strides, b_, span, key_head_), in_.k_strides.seq, span.length, thread_);
    loaded_ = c;
  }

  const launch::GatedDeltaChunkForward& in_;
  int b_, key_head_, thread_, loaded_ = -1;
  RowsInRegisters<QK, kKeyDim, kThreads> rows_;
};

// exp(G_last - G_i), the decay from token i's write to the end of its chunk, for the token columns
// of a warp's kTiles C tiles over tokens first .. first + 8 kTiles - 1 of a chunk (`gates`: its
// cumulative gates): factor[j][e] for token first + 8 j + 2 t + e of lane 4 g + t.
template <int kTiles>
struct DecayToEnd {
  float factor[kTiles][2];

  __device__ __forceinline__ DecayToEnd(const float* gates, int first, int lane) {
    const float last = gates[kChunk - 1];
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      const float2 g = *reinterpret_cast<const float2*>(gates + first + 8 * j + 2 * (lane % 4));
      factor[j][0] = __expf(last - g.x);
      factor[j][1] = __expf(last - g.y);
    }
  }

  // Tile j's columns (tokens) times their factors, in place.
  __device__ __forceinline__ void apply(float (&tiles)[kTiles][4]) const {
#pragma unroll
    for (int j = 0; j < kTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) tiles[j][e] *= factor[j][e % 2];
  }
};

// A warp's kRows rows of kWarpColumns bfloat16, staged in shared memory (row stride kOutStride),
// out to `to` (row stride kValueDim), 16 bytes per lane at a time.
template <int kRows, int kValueDim>
__device__ __forceinline__ void write_warp_rows(const bf16* staged, bf16* to, int lane) {
  static_assert(kWarpColumns == 16 && kRows % 16 == 0, "two 16-byte pieces a row, whole rounds of 16 rows");
  const int row = lane / 2, half = lane % 2 * 8;
  staged += row * kOutStride + half;
  to += row * kValueDim + half;
  __syncwarp();
#pragma unroll
  for (int s = 0; s < kRows / 16; ++s)
    *reinterpret_cast<uint4*>(to + 16 * s * kValueDim) = *reinterpret_cast<const uint4*>(staged + 16 * s * kOutStride);
  __syncwarp();
}

}  // namespace strata::kernels::gdn::walk
