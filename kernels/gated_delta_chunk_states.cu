// The chunked gated delta rule's sequential pass (see gated_delta_chunk.cuh), which also makes the
// output: for each chunk in order, with S the state entering it,
//   delta = U - W S;
//   O = diag(exp(G)) q S + P delta,   P_ij = (q_i . k_j) exp(G_i - G_j) for j <= i, else 0;
//   S = exp(G_last) S + k^T diag(exp(G_last - G)) delta;
// and, where the forward keeps its intermediates, states[c] = S as entered and delta over U
// (bfloat16). Each pair of walking warps takes 16 value columns of S, transposed and split by keys
// (gated_delta_chunk_walk.cuh):
//   delta^T = U^T - S^T W^T,   S^T = exp(G_last) S^T + (delta^T diag(exp(G_last - G))) k,
// two rounds of 32 tensor-core products a warp and step, S^T W^T for half of the chunk's tokens
// over all keys and the update for all tokens over the warp's half of the keys, as before the
// output joined the walk; then the output's: S^T q^T beside S^T W^T (the same A operands), and P
// for the warp's output rows, made in registers from q k^T and multiplying delta there. A warp
// takes output row blocks {0, 3} or {1, 2} of the chunk's four, so that both make five of P's ten
// 16 x 16 blocks on or below the diagonal. S^T W^T and S^T q^T take S rounded to bfloat16; the
// output's P delta takes delta rounded as it is stored, and the update takes it scaled to the
// chunk's end in float32, then rounded (flash-linear-attention's roundings); the state itself
// stays float32, and q S is scaled by exp(G_i) in float32. Without an output to make (the
// backward's recomputation) the walk skips q and P.
#include <cuda_pipeline.h>

#include <type_traits>

#include "gated_delta_chunk_walk.cuh"

namespace strata::kernels::gdn {
namespace {

using walk::kColumns;
using walk::kCopyWarps;
using walk::kOutStride;
using walk::kThreads;
using walk::kWalkWarps;
using walk::kWarpColumns;
using walk::kWarpTokens;
constexpr int kStages = 3;  // chunks in shared memory at once: operands copied two steps ahead
constexpr int kRowBlocks = kChunk / 16;

template <int kKeyDim>
struct StatesLayout {
  static constexpr int kHalfKeys = kKeyDim / 2;  // keys a walking warp holds
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kSliceStride = bf16_stride<kColumns>;
  static constexpr int kKeyBuffer = aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int kSliceBuffer = aligned_bytes(kChunk * kSliceStride * 2);
  // One chunk's operands: W, k and q rows ([kChunk][kKeyStride] each), U's columns
  // ([kChunk][kSliceStride]) and G.
  static constexpr int w = 0, keys = w + kKeyBuffer, queries = keys + kKeyBuffer, u = queries + kKeyBuffer;
  static constexpr int gates = u + kSliceBuffer;
  static constexpr int kStage = gates + aligned_bytes(kChunk * 4);
  // A walking warp's results of a step on their way out: its half's S rows, its tokens' delta
  // rows and its output rows (two buffers, as the copy warps write them out a step later).
  static constexpr int kStatesOut = aligned_bytes(kHalfKeys * kOutStride * 2);
  static constexpr int kTokensOut = aligned_bytes(kWarpTokens * kOutStride * 2);
  static constexpr int kWarpOut = kStatesOut + 2 * kTokensOut;
  static constexpr int out = kStages * kStage;
  // A walking warp's delta scaled to the chunk's end, for the other warp of its pair (one buffer).
  static constexpr int scaled = out + 2 * kWalkWarps * kWarpOut;
  static constexpr int bytes = scaled + kWalkWarps * kTokensOut;
};

// The output row block (of the chunk's four) that a warp of pair half `half` takes `nth`.
__device__ __forceinline__ int output_block(int half, int nth) { return nth == 0 ? half : kRowBlocks - 1 - half; }

// Two float32 values rounded to V and paired as a fragment register.
template <class V>
__device__ __forceinline__ uint32_t pack_pair(float low, float high) {
  if constexpr (std::is_same_v<V, bf16>) {
    return mma::pack_bf16(low, high);
  } else {
    const __half2 pair = __floats2half2_rn(low, high);
    return *reinterpret_cast<const uint32_t*>(&pair);
  }
}

template <class QK, class V, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads) states_kernel(Problem p) {
  using L = StatesLayout<kKeyDim>;
  using State = walk::TransposedState<L::kHalfKeys, kValueDim>;
  constexpr int kKeySteps = kKeyDim / 16;
  const auto& in = p.in;
  const int column0 = blockIdx.x * kColumns, h = blockIdx.y, segment = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const bool copier = warp >= kWalkWarps;                 // warp-uniform
  const int copy_thread = threadIdx.x - kWalkWarps * 32;  // among the copy warps
  const SegmentChunks chunks = segment_chunks(in, segment, h);
  const bool makes_output = in.out != nullptr, keeps = in.keep_for_backward;

  extern __shared__ __align__(128) unsigned char shared[];
  const auto stage = [&](int buffer, int region) { return shared + buffer * L::kStage + region; };
  // Walking warp `walker`'s results of chunk `step`: its half's S rows, its tokens' delta rows, its
  // output rows.
  const auto staged = [&](int step, int walker) {
    return reinterpret_cast<bf16*>(shared + L::out + ((step % 2) * kWalkWarps + walker) * L::kWarpOut);
  };
  const auto scaled = [&](int walker) { return reinterpret_cast<bf16*>(shared + L::scaled + walker * L::kTokensOut); };
  constexpr int kDeltaRows = L::kStatesOut / 2, kOutputRows = kDeltaRows + L::kTokensOut / 2;  // offsets, elements

  // Row `row`'s first token of chunk `step` in a [B, T, H, D] tensor.
  const auto token_row = [&](const launch::RowStrides& strides, const ChunkSpan& span) {
    return chunks.row * strides.batch + static_cast<int64_t>(span.first) * strides.seq + h * strides.head;
  };

  // By the copy warps: chunk `step`'s W, k, q (for the output), U columns and G into buffer
  // `buffer`; the results walking warp `warp - kWalkWarps` staged for chunk `step` out.
  constexpr int kCopyThreads = kCopyWarps * 32;
  const auto prefetch = [&](int step, int buffer) {
    const int64_t n = chunks.chunk0 + step;
    const ChunkSpan span = chunk_span(in, chunks.first + step);
    copy_rows<kChunk, kKeyDim, kCopyThreads>(p.w + n * kChunk * kKeyDim, kKeyDim,
                                             reinterpret_cast<bf16*>(stage(buffer, L::w)), L::kKeyStride, copy_thread);
    copy_rows<kChunk, kColumns, kCopyThreads>(p.u + n * kChunk * kValueDim + column0, kValueDim,
                                              reinterpret_cast<bf16*>(stage(buffer, L::u)), L::kSliceStride,
                                              copy_thread);
    if (copy_thread < kChunk / 4)
      __pipeline_memcpy_async(reinterpret_cast<float*>(stage(buffer, L::gates)) + 4 * copy_thread,
                              p.gates + n * kChunk + 4 * copy_thread, 16);
    stage_rows<QK, kKeyDim, kCopyThreads>(static_cast<const QK*>(in.k) + token_row(in.k_strides, span),
                                          in.k_strides.seq, span.length, reinterpret_cast<bf16*>(stage(buffer, L::keys)),
                                          copy_thread);
    if (makes_output)
      stage_rows<QK, kKeyDim, kCopyThreads>(static_cast<const QK*>(in.q) + token_row(in.q_strides, span),
                                            in.q_strides.seq, span.length,
                                            reinterpret_cast<bf16*>(stage(buffer, L::queries)), copy_thread);
  };
  const auto write_out = [&](int step) {
    const int64_t n = chunks.chunk0 + step;
    const int walker = warp - kWalkWarps;
    const walk::Seat seat(walker);
    const int column = column0 + seat.pair * kWarpColumns;
    const bf16* results = staged(step, walker);
    if (keeps) {
      walk::write_warp_rows<L::kHalfKeys>(results, p.states + (n * kKeyDim + seat.half * L::kHalfKeys) * kValueDim + column,
                                          kValueDim, lane);
      walk::write_warp_rows<kWarpTokens>(results + kDeltaRows,
                                         p.u + (n * kChunk + seat.half * kWarpTokens) * kValueDim + column, kValueDim,
                                         lane);
    }
    if (makes_output) {
      const ChunkSpan span = chunk_span(in, chunks.first + step);
      const int64_t row_stride = in.heads * kValueDim;
      V* out = static_cast<V*>(in.out) + ((chunks.row * in.seq + span.first) * in.heads + h) * kValueDim + column;
#pragma unroll
      for (int nth = 0; nth < 2; ++nth) {
        const int first = 16 * output_block(seat.half, nth);
        walk::write_warp_rows<16>(results + kOutputRows + 16 * nth * kOutStride, out + first * row_stride, row_stride,
                                  lane, span.length - first);
      }
    }
  };

  const walk::Seat seat(warp);  // for the walking warps
  const int64_t state_offset =
      ((static_cast<int64_t>(segment) * in.heads + h) * kKeyDim + seat.half * L::kHalfKeys) * kValueDim + column0 +
      seat.pair * kWarpColumns;
  State s;
  if (!copier) s.read(in.initial_state != nullptr ? in.initial_state + state_offset : nullptr, lane);

  walk::walk_chunks<kStages>(chunks.count, copier, prefetch, write_out, [&](int step, int buffer) {
    const auto* w = reinterpret_cast<const bf16*>(stage(buffer, L::w));
    const auto* keys = reinterpret_cast<const bf16*>(stage(buffer, L::keys));
    const auto* queries = reinterpret_cast<const bf16*>(stage(buffer, L::queries));
    const auto* u = reinterpret_cast<const bf16*>(stage(buffer, L::u));
    const auto* gates = reinterpret_cast<const float*>(stage(buffer, L::gates));
    const float last_gate = gates[kChunk - 1];
    bf16* states_out = staged(step, warp);
    bf16* delta_out = states_out + kDeltaRows;
    const bf16* other_states = staged(step, warp ^ 1);
    const bf16* other_delta = other_states + kDeltaRows;

    uint32_t sa[State::kKeySteps][4];  // the half's S^T in bfloat16, as A operands
    s.round(sa, states_out, lane);

    // delta^T = U^T - S^T W^T for the warp's tokens and S^T q^T for its output rows: W's and q's
    // rows are B's columns; U^T comes in the C layout.
    const bf16* w_rows = w + seat.half * kWarpTokens * L::kKeyStride;
    float d[kWarpTokens / 8][4] = {};
    float o[2][2][4] = {};  // the output rows' O^T, C tiles of 8 tokens, row block output_block(half, nth)
    walk::over_pair_halves(sa, other_states, seat, lane, [&](const uint32_t(&a)[4], int kk) {
      walk::add_times_rows<L::kKeyStride>(d, a, w_rows + 16 * kk, lane);
      if (makes_output)
#pragma unroll
        for (int nth = 0; nth < 2; ++nth)
          walk::add_times_rows<L::kKeyStride>(
              o[nth], a, queries + 16 * output_block(seat.half, nth) * L::kKeyStride + 16 * kk, lane);
    });
    const bf16* u_rows = u + seat.half * kWarpTokens * L::kSliceStride + seat.pair * kWarpColumns;
    uint32_t da[kWarpTokens / 16][4];      // the warp's tokens' delta^T in bfloat16, as A operands
    uint32_t scaled_a[kWarpTokens / 16][4];  // the same scaled to the chunk's end
#pragma unroll
    for (int tb = 0; tb < kWarpTokens / 16; ++tb) {
      walk::add_columns<L::kSliceStride>(d[2 * tb], d[2 * tb + 1], u_rows + 16 * tb * L::kSliceStride, -1.0f, lane);
      mma::a_operand(da[tb], d[2 * tb], d[2 * tb + 1]);
      float to_end[2][4];
#pragma unroll
      for (int x = 0; x < 2; ++x)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = seat.half * kWarpTokens + 16 * tb + 8 * x + 2 * t + e % 2;
          to_end[x][e] = d[2 * tb + x][e] * __expf(last_gate - gates[i]);
        }
      mma::a_operand(scaled_a[tb], to_end[0], to_end[1]);
    }
    walk::stage_operands(delta_out, da, lane);
    walk::stage_operands(scaled(warp), scaled_a, lane);

    // S^T = exp(G_last) S^T + (delta^T diag(exp(G_last - G))) k over the half's keys: k's rows are
    // B's k.
    const bf16* key_half = keys + seat.half * L::kHalfKeys;
    s.scale(__expf(last_gate));
    walk::over_pair_halves(scaled_a, scaled(warp ^ 1), seat, lane, [&](const uint32_t(&a)[4], int tb) {
      s.template add_product<L::kKeyStride>(a, key_half + 16 * tb * L::kKeyStride, lane);
    });
    if (!makes_output) return;

    // O^T = diag(exp(G)) (S^T q^T) + delta^T P^T on the warp's output rows: P's 16 x 16 blocks on or
    // below the diagonal from q k^T, gated and masked in float32, are in the C layout what B's
    // fragments of P^T are (k = j, n = i); delta^T's blocks are the warp's own or, once the pair
    // has met (in the update above), read back from the other warp's staging.
#pragma unroll
    for (int nth = 0; nth < 2; ++nth) {
      const int block = output_block(seat.half, nth);
#pragma unroll
      for (int x = 0; x < 2; ++x)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[nth][x][e] *= __expf(gates[16 * block + 8 * x + 2 * t + e % 2]);
      uint32_t qa[kKeySteps][4];
#pragma unroll
      for (int kk = 0; kk < kKeySteps; ++kk)
        mma::load_matrices(qa[kk],
                           mma::quadrants_down(queries + 16 * block * L::kKeyStride + 16 * kk, L::kKeyStride, lane));
#pragma unroll
      for (int jb = 0; jb < kRowBlocks; ++jb) {
        if (jb > block) continue;
        float score[2][4] = {};
#pragma unroll
        for (int kk = 0; kk < kKeySteps; ++kk) {
          uint32_t bk[4];
          mma::load_matrices(bk, mma::quadrants_across(keys + 16 * jb * L::kKeyStride + 16 * kk, L::kKeyStride, lane));
          mma::mma_bf16(score[0], qa[kk], bk[0], bk[1]);
          mma::mma_bf16(score[1], qa[kk], bk[2], bk[3]);
        }
#pragma unroll
        for (int x = 0; x < 2; ++x)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int i = 16 * block + g + 8 * (e / 2), j = 16 * jb + 8 * x + 2 * t + e % 2;
            score[x][e] = j <= i ? score[x][e] * __expf(gates[i] - gates[j]) : 0.0f;
          }
        uint32_t delta_a[4];
        if (jb / 2 == seat.half) {
#pragma unroll
          for (int r = 0; r < 4; ++r) delta_a[r] = da[jb % 2][r];
        } else {
          mma::load_matrices_transposed(
              delta_a, mma::quadrants_across(other_delta + 16 * (jb % 2) * kOutStride, kOutStride, lane));
        }
        mma::mma_bf16(o[nth][0], delta_a, mma::pack_bf16(score[0][0], score[0][1]),
                      mma::pack_bf16(score[1][0], score[1][1]));
        mma::mma_bf16(o[nth][1], delta_a, mma::pack_bf16(score[0][2], score[0][3]),
                      mma::pack_bf16(score[1][2], score[1][3]));
      }
    }
    uint32_t oa[2][4];  // O^T rounded to V, as A operands (k = the rows' tokens), for the staging
#pragma unroll
    for (int nth = 0; nth < 2; ++nth) {
      oa[nth][0] = pack_pair<V>(o[nth][0][0], o[nth][0][1]);
      oa[nth][1] = pack_pair<V>(o[nth][0][2], o[nth][0][3]);
      oa[nth][2] = pack_pair<V>(o[nth][1][0], o[nth][1][1]);
      oa[nth][3] = pack_pair<V>(o[nth][1][2], o[nth][1][3]);
    }
    walk::stage_operands(states_out + kOutputRows, oa, lane);
  });
  if (!copier) s.write(in.final_state + state_offset, lane);
}

}  // namespace

void launch_states(const Problem& p, cudaStream_t stream) {
  require_head_sizes_128(p.in);
  const dim3 grid(static_cast<unsigned>(p.in.value_dim / kColumns), static_cast<unsigned>(p.in.heads),
                  static_cast<unsigned>(p.in.segments));
  constexpr int bytes = StatesLayout<128>::bytes;
  host::dispatch(p.in.qk_dtype, [&](auto qk_tag) {
    using QK = typename decltype(qk_tag)::type;
    // v, and so the output, is bfloat16 or float16 (problem_of).
    auto kernel = p.in.v_dtype == launch::Dtype::Float16 ? states_kernel<QK, __half, 128, 128>
                                                         : states_kernel<QK, bf16, 128, 128>;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    kernel<<<grid, kThreads, bytes, stream>>>(p);
  });
  host::check_launch("gated_delta_chunk_forward (states)");
}

}  // namespace strata::kernels::gdn
