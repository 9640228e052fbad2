// The chunked gated delta rule's last pass (see gated_delta_chunk.cuh): each token reads the state
// entering its chunk, decayed to it, and the corrections of the chunk's steps up to itself:
//   O = diag(exp(G)) q S + P delta,   P_ij = (q_i . k_j) exp(G_i - G_j) for j <= i, else 0.
// One block of 8 warps per (row, head, chunk); warp w computes token rows 16 (w % 4) .. + 15 and
// half of the value columns. Its q rows stay in registers as A operands, and P's rows are made in
// registers from the q k^T accumulators (mma_fragments.cuh: only the key blocks at or before the
// warp's rows) and multiply delta without passing through shared memory. q S is scaled by
// exp(G_i) in float32 (rather than scaling q before rounding it to bfloat16).
#include <algorithm>

#include "gated_delta_chunk.cuh"
#include "mma_fragments.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowBlocks = kChunk / 16;             // 16-token blocks of a chunk
constexpr int kColumnHalves = kWarps / kRowBlocks;  // the value columns' share of a warp

template <int kKeyDim, int kValueDim>
struct OutputLayout {
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kValueStride = bf16_stride<kValueDim>;
  static constexpr int kWarpColumns = kValueDim / kColumnHalves;
  // A warp's output rows, float32, staged on their way out (8 more than a row: the lanes' 8-byte
  // stores of a half warp then fall in different banks).
  static constexpr int kOutStride = kWarpColumns + 8;
  static constexpr int queries = 0;
  static constexpr int keys = queries + aligned_bytes(kChunk * kKeyStride * 2);
  // S, bfloat16 [kKeyDim][kValueStride]; once every warp has read it, each warp's output rows
  // (float32, 16 x kOutStride) on their way out.
  static constexpr int state = keys + aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int delta =  // [kChunk][kValueStride]
      state + aligned_bytes(std::max(kKeyDim * kValueStride * 2, kWarps * 16 * kOutStride * 4));
  static constexpr int gates = delta + aligned_bytes(kChunk * kValueStride * 2);
  static constexpr int bytes = gates + aligned_bytes(kChunk * 4);
};

template <class QK, class V, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads, 2) output_kernel(Problem p) {
  using L = OutputLayout<kKeyDim, kValueDim>;
  constexpr int kKeySteps = kKeyDim / 16, kColumnBlocks = L::kWarpColumns / 16;
  const auto& in = p.in;
  const int c = blockIdx.y;
  const int b = blockIdx.x / static_cast<int>(in.heads), h = blockIdx.x % static_cast<int>(in.heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int rows = warp % kRowBlocks, column0 = warp / kRowBlocks * L::kWarpColumns;  // the warp's share
  const ChunkSpan span = chunk_span(in, c);
  const int64_t chunk_index = static_cast<int64_t>(blockIdx.x) * in.chunks + c;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* queries = reinterpret_cast<bf16*>(shared + L::queries);
  auto* keys = reinterpret_cast<bf16*>(shared + L::keys);
  auto* state = reinterpret_cast<bf16*>(shared + L::state);
  auto* delta = reinterpret_cast<bf16*>(shared + L::delta);
  auto* gates = reinterpret_cast<float*>(shared + L::gates);

  // Two groups of copies: q, k (and the gates) first, then S and delta, which land while the warps
  // make P from the first.
  const int key_head = key_head_of(in, h);
  stage_head_rows<QK, kKeyDim, kThreads>(in.q, in.q_strides, b, span, key_head, queries);
  stage_head_rows<QK, kKeyDim, kThreads>(in.k, in.k_strides, b, span, key_head, keys);
  if (threadIdx.x < kChunk) gates[threadIdx.x] = p.gates[chunk_index * kChunk + threadIdx.x];
  __pipeline_commit();
  copy_rows<kKeyDim, kValueDim, kThreads>(p.states + chunk_index * kKeyDim * kValueDim, kValueDim, state,
                                          L::kValueStride);
  copy_rows<kChunk, kValueDim, kThreads>(p.u + chunk_index * kChunk * kValueDim, kValueDim, delta, L::kValueStride);
  __pipeline_commit();
  __pipeline_wait_prior(1);
  __syncthreads();

  // The warp's q rows as A operands.
  uint32_t qa[kKeySteps][4];
#pragma unroll
  for (int kk = 0; kk < kKeySteps; ++kk)
    mma::load_matrices(qa[kk], mma::quadrants_down(queries + 16 * rows * L::kKeyStride + 16 * kk, L::kKeyStride, lane));

  // P's rows against key blocks 0 .. rows (P is zero past them): q k^T, gated and masked in
  // float32, rounded to bfloat16 as A operands.
  const int row_low = 16 * rows + g, row_high = row_low + 8;
  uint32_t pa[kRowBlocks][4];
#pragma unroll
  for (int jb = 0; jb < kRowBlocks; ++jb) {
    if (jb > rows) continue;
    float score[2][4] = {};
#pragma unroll
    for (int kk = 0; kk < kKeySteps; ++kk) {
      uint32_t bk[4];
      mma::load_matrices(bk, mma::quadrants_across(keys + 16 * jb * L::kKeyStride + 16 * kk, L::kKeyStride, lane));
      mma::mma_bf16(score[0], qa[kk], bk[0], bk[1]);
      mma::mma_bf16(score[1], qa[kk], bk[2], bk[3]);
    }
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = e < 2 ? row_low : row_high, j = 16 * jb + 8 * half + 2 * t + e % 2;
        score[half][e] = j <= i ? score[half][e] * __expf(gates[i] - gates[j]) : 0.0f;
      }
    mma::a_operand(pa[jb], score[0], score[1]);
  }

  // O = diag(exp(G)) q S + P delta on the warp's rows and columns.
  staged_rows_wait();
  __syncthreads();
  float o[2 * kColumnBlocks][4] = {};
#pragma unroll
  for (int kk = 0; kk < kKeySteps; ++kk)
#pragma unroll
    for (int nb = 0; nb < kColumnBlocks; ++nb) {
      uint32_t bs[4];
      mma::load_matrices_transposed(
          bs, mma::quadrants_down(state + 16 * kk * L::kValueStride + column0 + 16 * nb, L::kValueStride, lane));
      mma::mma_bf16(o[2 * nb], qa[kk], bs[0], bs[1]);
      mma::mma_bf16(o[2 * nb + 1], qa[kk], bs[2], bs[3]);
    }
  const float scale_low = __expf(gates[row_low]), scale_high = __expf(gates[row_high]);
#pragma unroll
  for (int j = 0; j < 2 * kColumnBlocks; ++j)
    o[j][0] *= scale_low, o[j][1] *= scale_low, o[j][2] *= scale_high, o[j][3] *= scale_high;
#pragma unroll
  for (int jb = 0; jb < kRowBlocks; ++jb) {
    if (jb > rows) continue;
#pragma unroll
    for (int nb = 0; nb < kColumnBlocks; ++nb) {
      uint32_t bd[4];
      mma::load_matrices_transposed(
          bd, mma::quadrants_down(delta + 16 * jb * L::kValueStride + column0 + 16 * nb, L::kValueStride, lane));
      mma::mma_bf16(o[2 * nb], pa[jb], bd[0], bd[1]);
      mma::mma_bf16(o[2 * nb + 1], pa[jb], bd[2], bd[3]);
    }
  }

  // Out through the warp's staging rows (over S, which every warp has read by then).
  __syncthreads();
  float* staged = reinterpret_cast<float*>(shared + L::state) + warp * 16 * L::kOutStride;
#pragma unroll
  for (int j = 0; j < 2 * kColumnBlocks; ++j) {
    *reinterpret_cast<float2*>(staged + g * L::kOutStride + 8 * j + 2 * t) = make_float2(o[j][0], o[j][1]);
    *reinterpret_cast<float2*>(staged + (g + 8) * L::kOutStride + 8 * j + 2 * t) = make_float2(o[j][2], o[j][3]);
  }
  __syncwarp();
  V* out = static_cast<V*>(in.out) +
           ((static_cast<int64_t>(b) * in.seq + span.first + 16 * rows) * in.heads + h) * kValueDim + column0;
  const int64_t out_row_stride = in.heads * kValueDim;
  for (int e = lane; e < 16 * L::kWarpColumns / 8; e += 32) {
    const int row = e / (L::kWarpColumns / 8), column = (e % (L::kWarpColumns / 8)) * 8;
    if (16 * rows + row >= span.length) continue;
    float x[8];
#pragma unroll
    for (int m = 0; m < 8; ++m) x[m] = staged[row * L::kOutStride + column + m];
    if constexpr (sizeof(V) == 4) {
      float low[4], high[4];
#pragma unroll
      for (int m = 0; m < 4; ++m) low[m] = x[m], high[m] = x[4 + m];
      device::store<V, 4>(out + row * out_row_stride + column, low);
      device::store<V, 4>(out + row * out_row_stride + column + 4, high);
    } else {
      device::store<V, 8>(out + row * out_row_stride + column, x);
    }
  }
}

}  // namespace

void launch_output(const Problem& p, cudaStream_t stream) {
  require_head_sizes_128(p.in);
  // Heads vary fastest: value heads that share a key head read its q and k close together (from L2).
  const dim3 grid(static_cast<unsigned>(p.in.batch * p.in.heads), static_cast<unsigned>(p.in.chunks));
  const auto kernel_of = [](auto qk_tag, auto v_tag) {
    return output_kernel<typename decltype(qk_tag)::type, typename decltype(v_tag)::type, 128, 128>;
  };
  launch_for_dtypes(p.in, kernel_of, grid, kThreads, OutputLayout<128, 128>::bytes, stream, p);
  host::check_launch("gated_delta_chunk_forward (output)");
}

}  // namespace strata::kernels::gdn
