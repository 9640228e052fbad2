// The chunked gated delta rule's backward, first pass (see gated_delta_chunk_backward.cuh): what
// each chunk's reverse state step needs that depends on no state. One block of 8 warps per (row,
// head, chunk):
//   dv_local = P^T dO,  P_ij = (q_i . k_j) exp(G_i - G_j) for j <= i, else 0   (tensor cores)
// into d_delta (bfloat16), and exp(G) q and dO as bfloat16 chunk arrays (zero rows past the
// chunk) that the states pass copies asynchronously. Warp w computes rows 16 (w % 4) .. + 15 of
// dv_local for half of the value columns, as the forward's output pass does for O: its rows of
// P^T are made in registers from the k q^T accumulators (mma_fragments.cuh; only the query blocks
// at or after the warp's rows) and multiply dO without passing through shared memory.
#include "gated_delta_chunk_backward.cuh"
#include "mma_fragments.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowBlocks = kChunk / 16;             // 16-token blocks of a chunk
constexpr int kColumnHalves = kWarps / kRowBlocks;  // the value columns' share of a warp

template <int kKeyDim, int kValueDim>
struct LocalLayout {
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kValueStride = bf16_stride<kValueDim>;
  static constexpr int kWarpColumns = kValueDim / kColumnHalves;
  static constexpr int kOutStride = bf16_stride<kWarpColumns>;  // a warp's dv_local rows on their way out
  // q and k, bfloat16 [kChunk][kKeyStride] each; once every warp has read them, each warp's
  // dv_local rows (16 x kOutStride).
  static constexpr int queries = 0;
  static constexpr int keys = queries + aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int d_out = keys + aligned_bytes(kChunk * kKeyStride * 2);
  static_assert(kWarps * 16 * kOutStride * 2 <= d_out, "the staged rows fit over q and k");
  static constexpr int gates = d_out + aligned_bytes(kChunk * kValueStride * 2);
  static constexpr int bytes = gates + aligned_bytes(kChunk * 4);
};

template <class QK, class V, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads, 2) backward_local_kernel(BackwardProblem p) {
  using L = LocalLayout<kKeyDim, kValueDim>;
  constexpr int kKeySteps = kKeyDim / 16, kColumnBlocks = L::kWarpColumns / 16;
  const auto& in = p.forward.in;
  const int h = blockIdx.x, c = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int rows = warp % kRowBlocks, column0 = warp / kRowBlocks * L::kWarpColumns;  // the warp's share
  const ChunkSpan span = chunk_span(in, c);
  const int64_t chunk_index = (static_cast<int64_t>(b) * in.heads + h) * in.chunks + c;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* queries = reinterpret_cast<bf16*>(shared + L::queries);
  auto* keys = reinterpret_cast<bf16*>(shared + L::keys);
  auto* d_out = reinterpret_cast<bf16*>(shared + L::d_out);
  auto* gates = reinterpret_cast<float*>(shared + L::gates);

  const int key_head = key_head_of(in, h);
  stage_head_rows<QK, kKeyDim, kThreads>(in.q, in.q_strides, b, span, key_head, queries);
  stage_head_rows<QK, kKeyDim, kThreads>(in.k, in.k_strides, b, span, key_head, keys);
  stage_head_rows<V, kValueDim, kThreads>(p.in.d_out, p.in.d_out_strides, b, span, h, d_out);
  if (threadIdx.x < kChunk) gates[threadIdx.x] = p.forward.gates[chunk_index * kChunk + threadIdx.x];
  staged_rows_wait();
  __syncthreads();

  // exp(G) q and dO's chunk arrays out (nothing writes q or dO in shared memory before the
  // __syncthreads below).
  for (int e = threadIdx.x; e < kChunk * kKeyDim / 8; e += kThreads) {
    const int i = e / (kKeyDim / 8), column = (e % (kKeyDim / 8)) * 8;
    float x[8];
    device::load<bf16, 8>(queries + i * L::kKeyStride + column, x);
    const float scale = __expf(gates[i]);
#pragma unroll
    for (int m = 0; m < 8; ++m) x[m] *= scale;
    device::store<bf16, 8>(p.queries + (chunk_index * kChunk + i) * kKeyDim + column, x);
  }
  for (int e = threadIdx.x; e < kChunk * kValueDim / 8; e += kThreads) {
    const int i = e / (kValueDim / 8), column = (e % (kValueDim / 8)) * 8;
    *reinterpret_cast<uint4*>(p.d_out + (chunk_index * kChunk + i) * kValueDim + column) =
        *reinterpret_cast<const uint4*>(d_out + i * L::kValueStride + column);
  }

  // The warp's k rows as A operands.
  uint32_t ka[kKeySteps][4];
#pragma unroll
  for (int kk = 0; kk < kKeySteps; ++kk)
    mma::load_matrices(ka[kk], mma::quadrants_down(keys + 16 * rows * L::kKeyStride + 16 * kk, L::kKeyStride, lane));

  // P^T's rows against query blocks rows .. 3 (zero before them): k q^T, gated and masked in
  // float32, rounded to bfloat16 as A operands.
  const int row_low = 16 * rows + g, row_high = row_low + 8;
  uint32_t pa[kRowBlocks][4];
#pragma unroll
  for (int ib = 0; ib < kRowBlocks; ++ib) {
    if (ib < rows) continue;
    float score[2][4] = {};
#pragma unroll
    for (int kk = 0; kk < kKeySteps; ++kk) {
      uint32_t bq[4];
      mma::load_matrices(bq, mma::quadrants_across(queries + 16 * ib * L::kKeyStride + 16 * kk, L::kKeyStride, lane));
      mma::mma_bf16(score[0], ka[kk], bq[0], bq[1]);
      mma::mma_bf16(score[1], ka[kk], bq[2], bq[3]);
    }
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = e < 2 ? row_low : row_high, i = 16 * ib + 8 * half + 2 * t + e % 2;
        score[half][e] = i >= j ? score[half][e] * __expf(gates[i] - gates[j]) : 0.0f;
      }
    mma::a_operand(pa[ib], score[0], score[1]);
  }

  // dv_local = P^T dO on the warp's rows and columns.
  float local[2 * kColumnBlocks][4] = {};
#pragma unroll
  for (int ib = 0; ib < kRowBlocks; ++ib) {
    if (ib < rows) continue;
#pragma unroll
    for (int nb = 0; nb < kColumnBlocks; ++nb) {
      uint32_t bd[4];
      mma::load_matrices_transposed(
          bd, mma::quadrants_down(d_out + 16 * ib * L::kValueStride + column0 + 16 * nb, L::kValueStride, lane));
      mma::mma_bf16(local[2 * nb], pa[ib], bd[0], bd[1]);
      mma::mma_bf16(local[2 * nb + 1], pa[ib], bd[2], bd[3]);
    }
  }

  // Out through the warp's staging rows (over q and k, which every warp has read by then).
  __syncthreads();
  bf16* staged = queries + warp * 16 * L::kOutStride;
#pragma unroll
  for (int j = 0; j < 2 * kColumnBlocks; ++j) {
    *reinterpret_cast<uint32_t*>(staged + g * L::kOutStride + 8 * j + 2 * t) = mma::pack_bf16(local[j][0], local[j][1]);
    *reinterpret_cast<uint32_t*>(staged + (g + 8) * L::kOutStride + 8 * j + 2 * t) =
        mma::pack_bf16(local[j][2], local[j][3]);
  }
  __syncwarp();
  bf16* to = p.d_delta + (chunk_index * kChunk + 16 * rows) * kValueDim + column0;
  for (int e = lane; e < 16 * L::kWarpColumns / 8; e += 32) {
    const int row = e / (L::kWarpColumns / 8), column = (e % (L::kWarpColumns / 8)) * 8;
    *reinterpret_cast<uint4*>(to + row * kValueDim + column) =
        *reinterpret_cast<const uint4*>(staged + row * L::kOutStride + column);
  }
}

}  // namespace

void launch_backward_local(const BackwardProblem& p, cudaStream_t stream) {
  const auto& in = p.forward.in;
  // Heads vary fastest: value heads that share a key head read its q and k close together (from L2).
  const dim3 grid(static_cast<unsigned>(in.heads), static_cast<unsigned>(in.chunks), static_cast<unsigned>(in.batch));
  const auto kernel_of = [](auto qk_tag, auto v_tag) {
    return backward_local_kernel<typename decltype(qk_tag)::type, typename decltype(v_tag)::type, 128, 128>;
  };
  launch_for_dtypes(in, kernel_of, grid, kThreads, LocalLayout<128, 128>::bytes, stream, p);
  host::check_launch("gated_delta_chunk_backward (local)");
}

}  // namespace strata::kernels::gdn
