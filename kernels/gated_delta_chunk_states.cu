// The chunked gated delta rule's sequential pass (see gated_delta_chunk.cuh): for each chunk in
// order, with S the state entering it,
//   states[c] = S (bfloat16);   delta = U - W S (overwrites U, bfloat16);
//   S = exp(G_last) S + k^T diag(exp(G_last - G)) delta.
// Each pair of walking warps takes 16 value columns of S, transposed and split by keys
// (gated_delta_chunk_walk.cuh):
//   delta^T = U^T - S^T W^T,   S^T = exp(G_last) S^T + (delta^T diag(exp(G_last - G))) k,
// two rounds of 32 tensor-core products a warp and step: S^T W^T for half of the chunk's tokens
// over all keys, the update for all tokens over the warp's half of the keys. S^T W^T takes S
// rounded to bfloat16 (as the output pass reads it) and the update takes k as it came and delta
// decayed to the chunk's end, rounded to bfloat16 once (flash-linear-attention's order: the keys
// are read in place, half as many bytes as keys decayed and written out by prepare would be with
// Qwen3-Next's two value heads a key head); the state itself stays float32.
#include <cuda_pipeline.h>

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

template <int kKeyDim>
struct StatesLayout {
  static constexpr int kHalfKeys = kKeyDim / 2;  // keys a walking warp holds
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kSliceStride = bf16_stride<kColumns>;
  static constexpr int kKeyBuffer = aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int kSliceBuffer = aligned_bytes(kChunk * kSliceStride * 2);
  static constexpr int kStatesOut = aligned_bytes(kHalfKeys * kOutStride * 2);
  static constexpr int kDeltaOut = aligned_bytes(kWarpTokens * kOutStride * 2);
  // S rows, delta rows (to write out), delta rows decayed to the chunk's end (for the other warp)
  static constexpr int kWarpOut = kStatesOut + 2 * kDeltaOut;
  static constexpr int w = 0;                             // [kStages][kChunk][kKeyStride]
  static constexpr int keys = w + kStages * kKeyBuffer;   // [kStages][kChunk][kKeyStride]
  static constexpr int u = keys + kStages * kKeyBuffer;   // [kStages][kChunk][kSliceStride]
  static constexpr int out = u + kStages * kSliceBuffer;  // [2][kWalkWarps]: a walking warp's staged results
  static constexpr int bytes = out + 2 * kWalkWarps * kWarpOut;
};

template <class QK, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads) states_kernel(Problem p) {
  using L = StatesLayout<kKeyDim>;
  using State = walk::TransposedState<L::kHalfKeys, kValueDim>;
  const auto& in = p.in;
  const int column0 = blockIdx.x * kColumns, h = blockIdx.y, segment = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bool copier = warp >= kWalkWarps;                 // warp-uniform
  const int copy_thread = threadIdx.x - kWalkWarps * 32;  // among the copy warps
  const SegmentChunks chunks = segment_chunks(in, segment, h);
  const int key_head = key_head_of(in, h);

  extern __shared__ __align__(128) unsigned char shared[];
  constexpr int kKeyElements = L::kKeyBuffer / 2, kSliceElements = L::kSliceBuffer / 2;
  auto* w_buffers = reinterpret_cast<bf16*>(shared + L::w);
  auto* k_buffers = reinterpret_cast<bf16*>(shared + L::keys);
  auto* u_buffers = reinterpret_cast<bf16*>(shared + L::u);
  // Walking warp `walker`'s results of chunk `step`: its half's S rows, then its tokens' delta
  // rows, as they are and decayed.
  const auto staged = [&](int step, int walker) {
    return reinterpret_cast<bf16*>(shared + L::out + ((step % 2) * kWalkWarps + walker) * L::kWarpOut);
  };

  // By the copy warps: chunk `step`'s W, keys and U columns into buffer `buffer`; the results
  // walking warp `warp - kWalkWarps` staged for chunk `step` out to states and over U.
  constexpr int kCopyThreads = kCopyWarps * 32;
  walk::KeyStager<QK, kKeyDim, kCopyThreads> keys(in, chunks.row, key_head, copy_thread);
  const auto prefetch = [&](int step, int buffer) {
    const int64_t n = chunks.chunk0 + step;
    copy_rows<kChunk, kKeyDim, kCopyThreads>(p.w + n * kChunk * kKeyDim, kKeyDim, w_buffers + buffer * kKeyElements,
                                             L::kKeyStride, copy_thread);
    keys.stage(chunks.first + step, step + 1 < chunks.count ? chunks.first + step + 1 : -1,
               k_buffers + buffer * kKeyElements);
    copy_rows<kChunk, kColumns, kCopyThreads>(p.u + n * kChunk * kValueDim + column0, kValueDim,
                                              u_buffers + buffer * kSliceElements, L::kSliceStride, copy_thread);
  };
  const auto write_out = [&](int step) {
    const int64_t n = chunks.chunk0 + step;
    const int walker = warp - kWalkWarps;
    if (walker >= kWalkWarps) return;  // a copy warp past the walking warps: nothing to write
    const walk::Seat seat(walker);
    const int column = column0 + seat.pair * kWarpColumns;
    walk::write_warp_rows<L::kHalfKeys, kValueDim>(
        staged(step, walker), p.states + (n * kKeyDim + seat.half * L::kHalfKeys) * kValueDim + column, lane);
    walk::write_warp_rows<kWarpTokens, kValueDim>(staged(step, walker) + L::kStatesOut / 2,
                                                  p.u + (n * kChunk + seat.half * kWarpTokens) * kValueDim + column,
                                                  lane);
  };

  const walk::Seat seat(warp);  // for the walking warps
  const int64_t state_offset =
      ((static_cast<int64_t>(segment) * in.heads + h) * kKeyDim + seat.half * L::kHalfKeys) * kValueDim + column0 +
      seat.pair * kWarpColumns;
  State s;
  if (!copier) s.read(in.initial_state != nullptr ? in.initial_state + state_offset : nullptr, lane);

  walk::walk_chunks<kStages>(chunks.count, copier, prefetch, write_out, [&](int step, int buffer) {
    const int64_t n = chunks.chunk0 + step;
    const float* gates = p.gates + n * kChunk;
    const float decay = __expf(gates[kChunk - 1]);
    const walk::DecayToEnd<kWarpTokens / 8> to_end(gates, seat.half * kWarpTokens, lane);
    bf16* states_out = staged(step, warp);
    bf16* delta_out = states_out + L::kStatesOut / 2;
    bf16* decayed_out = delta_out + L::kDeltaOut / 2;
    const bf16* other_states = staged(step, warp ^ 1);
    const bf16* other_decayed = other_states + (L::kStatesOut + L::kDeltaOut) / 2;

    uint32_t sa[State::kKeySteps][4];  // the half's S^T in bfloat16, as A operands
    s.round(sa, states_out, lane);

    // delta^T = U^T - S^T W^T for the warp's tokens: W's rows are B's columns; U^T comes in the C
    // layout.
    const bf16* w = w_buffers + buffer * kKeyElements + seat.half * kWarpTokens * L::kKeyStride;
    float d[kWarpTokens / 8][4] = {};
    walk::over_pair_halves(sa, other_states, seat, lane, [&](const uint32_t(&a)[4], int kk) {
      walk::add_times_rows<L::kKeyStride>(d, a, w + 16 * kk, lane);
    });
    const bf16* u =
        u_buffers + buffer * kSliceElements + seat.half * kWarpTokens * L::kSliceStride + seat.pair * kWarpColumns;
    uint32_t da[kWarpTokens / 16][4];       // the warp's tokens' delta^T in bfloat16 (stored)
    uint32_t decayed[kWarpTokens / 16][4];  // and decayed to the chunk's end, as A operands
#pragma unroll
    for (int tb = 0; tb < kWarpTokens / 16; ++tb)
      walk::add_columns<L::kSliceStride>(d[2 * tb], d[2 * tb + 1], u + 16 * tb * L::kSliceStride, -1.0f, lane);
#pragma unroll
    for (int tb = 0; tb < kWarpTokens / 16; ++tb) mma::a_operand(da[tb], d[2 * tb], d[2 * tb + 1]);
    to_end.apply(d);
#pragma unroll
    for (int tb = 0; tb < kWarpTokens / 16; ++tb) mma::a_operand(decayed[tb], d[2 * tb], d[2 * tb + 1]);
    walk::stage_operands(decayed_out, decayed, lane);

    // S^T = exp(G_last) S^T + decayed delta^T k over the half's keys: k's rows are B's k.
    const bf16* k = k_buffers + buffer * kKeyElements + seat.half * L::kHalfKeys;
    s.scale(decay);
    walk::over_pair_halves(decayed, other_decayed, seat, lane, [&](const uint32_t(&a)[4], int tb) {
      s.template add_product<L::kKeyStride>(a, k + 16 * tb * L::kKeyStride, lane);
    });
    walk::stage_operands(delta_out, da, lane);  // for write_out only, which runs after the next barrier
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
    auto kernel = states_kernel<typename decltype(qk_tag)::type, 128, 128>;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    kernel<<<grid, kThreads, bytes, stream>>>(p);
  });
  host::check_launch("gated_delta_chunk_forward (states)");
}

}  // namespace strata::kernels::gdn
