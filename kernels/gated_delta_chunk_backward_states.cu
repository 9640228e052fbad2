// The chunked gated delta rule's backward, sequential pass (see gated_delta_chunk_backward.cuh):
// for each chunk in reverse, with dH the gradient of the state leaving it,
//   d_states[c] = dH (bfloat16);
//   d_delta = dv_local + diag(exp(G_last - G)) k dH (overwrites dv_local, bfloat16);
//   dH = exp(G_last) dH + (exp(G) q)^T dO - W^T d_delta,
// which leaves dH = dL/d(initial state). The forward's states pass run backwards: each pair of
// walking warps takes 16 value columns of dH, transposed and split by keys
// (gated_delta_chunk_walk.cuh):
//   d_delta^T = dv_local^T + (dH^T k^T) diag(exp(G_last - G)),
//   dH^T = exp(G_last) dH^T + dO^T (exp(G) q) - d_delta^T W,
// d_delta for half of the chunk's tokens over all keys, the update for all tokens over the warp's
// half of the keys, with dH rounded to bfloat16 in the first product and d_delta in the update, as
// they are stored. The keys are read in place, as the forward's walk reads them, and the decay to
// the chunk's end scales the product in float32.
#include <cuda_pipeline.h>

#include "gated_delta_chunk_backward.cuh"
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
struct BackwardStatesLayout {
  static constexpr int kHalfKeys = kKeyDim / 2;  // keys a walking warp holds
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kSliceStride = bf16_stride<kColumns>;
  static constexpr int kKeyBuffer = aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int kSliceBuffer = aligned_bytes(kChunk * kSliceStride * 2);
  static constexpr int kStatesOut = aligned_bytes(kHalfKeys * kOutStride * 2);
  static constexpr int kWarpOut = kStatesOut + aligned_bytes(kWarpTokens * kOutStride * 2);  // dH rows, d_delta rows
  static constexpr int w = 0;                                   // [kStages][kChunk][kKeyStride]
  static constexpr int keys = w + kStages * kKeyBuffer;         // [kStages][kChunk][kKeyStride]
  static constexpr int queries = keys + kStages * kKeyBuffer;   // [kStages][kChunk][kKeyStride]: exp(G) q
  static constexpr int d_out = queries + kStages * kKeyBuffer;  // [kStages][kChunk][kSliceStride]
  static constexpr int local = d_out + kStages * kSliceBuffer;  // [kStages][kChunk][kSliceStride]: dv_local
  static constexpr int out = local + kStages * kSliceBuffer;    // [2][kWalkWarps]: a walking warp's staged results
  static constexpr int bytes = out + 2 * kWalkWarps * kWarpOut;
};

template <class QK, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads) backward_states_kernel(BackwardProblem p) {
  using L = BackwardStatesLayout<kKeyDim>;
  using State = walk::TransposedState<L::kHalfKeys, kValueDim>;
  const auto& in = p.forward.in;
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
  auto* q_buffers = reinterpret_cast<bf16*>(shared + L::queries);
  auto* do_buffers = reinterpret_cast<bf16*>(shared + L::d_out);
  auto* local_buffers = reinterpret_cast<bf16*>(shared + L::local);
  // Walking warp `walker`'s results of the walk's step `step`: its half's dH rows, then its
  // tokens' d_delta rows.
  const auto staged = [&](int step, int walker) {
    return reinterpret_cast<bf16*>(shared + L::out + ((step % 2) * kWalkWarps + walker) * L::kWarpOut);
  };
  // The chunk the walk takes at step `step` (chunk count - 1 - step of the segment).
  const auto chunk_at = [&](int step) { return chunks.chunk0 + chunks.count - 1 - step; };

  // By the copy warps: step `step`'s chunk arrays into buffer `buffer`; the results walking warp
  // `warp - kWalkWarps` staged at step `step` out to d_states and over dv_local.
  constexpr int kCopyThreads = kCopyWarps * 32;
  walk::KeyStager<QK, kKeyDim, kCopyThreads> keys(in, chunks.row, key_head, copy_thread);
  const auto prefetch = [&](int step, int buffer) {
    const int64_t n = chunk_at(step);
    copy_rows<kChunk, kKeyDim, kCopyThreads>(p.forward.w + n * kChunk * kKeyDim, kKeyDim,
                                             w_buffers + buffer * kKeyElements, L::kKeyStride, copy_thread);
    const int c = chunks.first + chunks.count - 1 - step;
    keys.stage(c, step + 1 < chunks.count ? c - 1 : -1, k_buffers + buffer * kKeyElements);
    copy_rows<kChunk, kKeyDim, kCopyThreads>(p.queries + n * kChunk * kKeyDim, kKeyDim,
                                             q_buffers + buffer * kKeyElements, L::kKeyStride, copy_thread);
    copy_rows<kChunk, kColumns, kCopyThreads>(p.d_out + n * kChunk * kValueDim + column0, kValueDim,
                                              do_buffers + buffer * kSliceElements, L::kSliceStride, copy_thread);
    copy_rows<kChunk, kColumns, kCopyThreads>(p.d_delta + n * kChunk * kValueDim + column0, kValueDim,
                                              local_buffers + buffer * kSliceElements, L::kSliceStride, copy_thread);
  };
  const auto write_out = [&](int step) {
    const int64_t n = chunk_at(step);
    const int walker = warp - kWalkWarps;
    if (walker >= kWalkWarps) return;  // a copy warp past the walking warps: nothing to write
    const walk::Seat seat(walker);
    const int column = column0 + seat.pair * kWarpColumns;
    walk::write_warp_rows<L::kHalfKeys, kValueDim>(
        staged(step, walker), p.d_states + (n * kKeyDim + seat.half * L::kHalfKeys) * kValueDim + column, lane);
    walk::write_warp_rows<kWarpTokens, kValueDim>(
        staged(step, walker) + L::kStatesOut / 2,
        p.d_delta + (n * kChunk + seat.half * kWarpTokens) * kValueDim + column, lane);
  };

  const walk::Seat seat(warp);  // for the walking warps
  const int64_t state_offset =
      ((static_cast<int64_t>(segment) * in.heads + h) * kKeyDim + seat.half * L::kHalfKeys) * kValueDim + column0 +
      seat.pair * kWarpColumns;
  State s;  // the half's dH^T
  if (!copier) s.read(p.in.d_final_state != nullptr ? p.in.d_final_state + state_offset : nullptr, lane);

  walk::walk_chunks<kStages>(chunks.count, copier, prefetch, write_out, [&](int step, int buffer) {
    const float* gates = p.forward.gates + chunk_at(step) * kChunk;
    const float decay = __expf(gates[kChunk - 1]);
    const walk::DecayToEnd<kWarpTokens / 8> to_end(gates, seat.half * kWarpTokens, lane);
    bf16* states_out = staged(step, warp);
    bf16* delta_out = states_out + L::kStatesOut / 2;
    const bf16* other_states = staged(step, warp ^ 1);
    const bf16* other_delta = other_states + L::kStatesOut / 2;

    uint32_t ha[State::kKeySteps][4];  // the half's dH^T in bfloat16, as A operands
    s.round(ha, states_out, lane);

    // d_delta^T = dv_local^T + (dH^T k^T) diag(exp(G_last - G)) for the warp's tokens: k's rows
    // are B's columns; dv_local^T comes in the C layout.
    const bf16* k = k_buffers + buffer * kKeyElements + seat.half * kWarpTokens * L::kKeyStride;
    float d[kWarpTokens / 8][4] = {};
    walk::over_pair_halves(ha, other_states, seat, lane, [&](const uint32_t(&a)[4], int kk) {
      walk::add_times_rows<L::kKeyStride>(d, a, k + 16 * kk, lane);
    });
    to_end.apply(d);
    const bf16* local =
        local_buffers + buffer * kSliceElements + seat.half * kWarpTokens * L::kSliceStride + seat.pair * kWarpColumns;
    uint32_t da[kWarpTokens / 16][4];  // the warp's tokens' d_delta^T in bfloat16, as A operands
#pragma unroll
    for (int tb = 0; tb < kWarpTokens / 16; ++tb) {
      walk::add_columns<L::kSliceStride>(d[2 * tb], d[2 * tb + 1], local + 16 * tb * L::kSliceStride, 1.0f, lane);
      mma::a_operand(da[tb], d[2 * tb], d[2 * tb + 1]);
    }
    walk::stage_operands(delta_out, da, lane);

    // dH^T = exp(G_last) dH^T + dO^T (exp(G) q) - d_delta^T W over the half's keys: dO^T comes as
    // A operands (ldmatrix transposed), the rows of exp(G) q and W are B's k.
    const bf16* q = q_buffers + buffer * kKeyElements + seat.half * L::kHalfKeys;
    const bf16* w = w_buffers + buffer * kKeyElements + seat.half * L::kHalfKeys;
    const bf16* d_out = do_buffers + buffer * kSliceElements + seat.pair * kWarpColumns;
    s.scale(decay);
    walk::over_pair_halves(da, other_delta, seat, lane, [&](const uint32_t(&a)[4], int tb) {
      uint32_t doa[4], minus_da[4];
      mma::load_matrices_transposed(doa,
                                    mma::quadrants_across(d_out + 16 * tb * L::kSliceStride, L::kSliceStride, lane));
      s.template add_product<L::kKeyStride>(doa, q + 16 * tb * L::kKeyStride, lane);
#pragma unroll
      for (int r = 0; r < 4; ++r) minus_da[r] = a[r] ^ 0x80008000u;  // both halves' signs flipped
      s.template add_product<L::kKeyStride>(minus_da, w + 16 * tb * L::kKeyStride, lane);
    });
  });
  if (!copier && p.in.d_initial_state != nullptr) s.write(p.in.d_initial_state + state_offset, lane);
}

}  // namespace

void launch_backward_states(const BackwardProblem& p, cudaStream_t stream) {
  const auto& in = p.forward.in;
  const dim3 grid(static_cast<unsigned>(in.value_dim / kColumns), static_cast<unsigned>(in.heads),
                  static_cast<unsigned>(in.segments));
  constexpr int bytes = BackwardStatesLayout<128>::bytes;
  host::dispatch(in.qk_dtype, [&](auto qk_tag) {
    auto kernel = backward_states_kernel<typename decltype(qk_tag)::type, 128, 128>;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    kernel<<<grid, kThreads, bytes, stream>>>(p);
  });
  host::check_launch("gated_delta_chunk_backward (states)");
}

}  // namespace strata::kernels::gdn
