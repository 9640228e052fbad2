// The chunked gated delta rule's last pass (see gated_delta_chunk.cuh): each token reads the state
// entering its chunk, decayed to it, and the corrections of the chunk's steps up to itself:
//   O = diag(exp(G)) q S + P delta,   P_ij = (q_i . k_j) exp(G_i - G_j) for j <= i, else 0.
// One block of 8 warps per (row, head, chunk, kColumns value columns): P is recomputed for each
// column slice (it is small next to q S), which keeps shared memory within two blocks per SM.
// q S is scaled by exp(G_i) in float32 (rather than scaling q before rounding it to bfloat16).
#include "gated_delta_chunk.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kColumns = 64;  // value columns per block
constexpr int kBlocks = kChunk / kTile;

template <int kKeyDim>
struct OutputLayout {
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kSliceStride = bf16_stride<kColumns>;
  static constexpr int kScoreStride = float_stride<kChunk>, kScore16Stride = bf16_stride<kChunk>;
  static constexpr int queries = 0;
  static constexpr int keys = queries + aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int state = keys + aligned_bytes(kChunk * kKeyStride * 2);         // [kKeyDim][kSliceStride]
  static constexpr int delta = state + aligned_bytes(kKeyDim * kSliceStride * 2);     // [kChunk][kSliceStride]
  static constexpr int scores = delta + aligned_bytes(kChunk * kSliceStride * 2);     // q k^T, float32
  static constexpr int scores16 = scores + aligned_bytes(kChunk * kScoreStride * 4);  // P, bfloat16
  static constexpr int scratch = scores16 + aligned_bytes(kChunk * kScore16Stride * 2);
  static constexpr int gates = scratch + aligned_bytes(kWarps * kTile * kTile * 4);
  static constexpr int bytes = gates + aligned_bytes(kChunk * 4);
};

template <class QK, class V, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads, 2) output_kernel(Problem p) {
  using namespace nvcuda;
  using L = OutputLayout<kKeyDim>;
  const auto& in = p.in;
  const int column0 = blockIdx.x * kColumns, c = blockIdx.y;
  const int b = blockIdx.z / static_cast<int>(in.heads), h = blockIdx.z % static_cast<int>(in.heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const ChunkSpan span = chunk_span(in, c);
  const int64_t chunk_index = static_cast<int64_t>(blockIdx.z) * in.chunks + c;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* queries = reinterpret_cast<bf16*>(shared + L::queries);
  auto* keys = reinterpret_cast<bf16*>(shared + L::keys);
  auto* state = reinterpret_cast<bf16*>(shared + L::state);
  auto* delta = reinterpret_cast<bf16*>(shared + L::delta);
  auto* scores = reinterpret_cast<float*>(shared + L::scores);
  auto* scores16 = reinterpret_cast<bf16*>(shared + L::scores16);
  auto* scratch = reinterpret_cast<float*>(shared + L::scratch) + warp * kTile * kTile;
  auto* gates = reinterpret_cast<float*>(shared + L::gates);

  const auto head = [&](const void* t, const launch::RowStrides& strides) {
    return static_cast<const QK*>(t) + b * strides.batch + static_cast<int64_t>(span.first) * strides.seq +
           h * strides.head;
  };
  copy_rows<kKeyDim, kColumns, kThreads>(p.states + chunk_index * kKeyDim * kValueDim + column0, kValueDim, state,
                                         L::kSliceStride);
  copy_rows<kChunk, kColumns, kThreads>(p.u + chunk_index * kChunk * kValueDim + column0, kValueDim, delta,
                                        L::kSliceStride);
  stage_rows<QK, kKeyDim, kThreads>(head(in.q, in.q_strides), in.q_strides.seq, span.length, queries);
  stage_rows<QK, kKeyDim, kThreads>(head(in.k, in.k_strides), in.k_strides.seq, span.length, keys);
  if (threadIdx.x < kChunk) gates[threadIdx.x] = p.gates[chunk_index * kChunk + threadIdx.x];
  staged_rows_wait();
  __syncthreads();

  // q k^T on or below the diagonal, then P.
  lower_chunk_gram<kKeyDim, L::kKeyStride, L::kScoreStride, kWarps>(scores, queries, keys, warp);
  __syncthreads();
  gated_causal_scores<kThreads, L::kScoreStride, L::kScore16Stride>(scores, gates, scores16);
  __syncthreads();

  V* out =
      static_cast<V*>(in.out) + ((static_cast<int64_t>(b) * in.seq + span.first) * in.heads + h) * kValueDim + column0;
  const int64_t out_row_stride = in.heads * kValueDim;
  for (int t = warp; t < kBlocks * (kColumns / kTile); t += kWarps) {
    const int ti = t / (kColumns / kTile), tj = t % (kColumns / kTile);
    Accumulator acc;
    wmma::fill_fragment(acc, 0.0f);
    mma_tile_unrolled<kKeyDim / kTile, L::kKeyStride, L::kSliceStride>(acc, queries, state, ti, tj);
    // Rows scaled by exp(G_i) through the warp's scratch tile: lane l owns half of row l / 2.
    wmma::store_matrix_sync(scratch, acc, kTile, wmma::mem_row_major);
    __syncwarp();
    {
      const int row = lane / 2, column = (lane % 2) * 8;
      const float scale = __expf(gates[ti * kTile + row]);
#pragma unroll
      for (int m = 0; m < 8; ++m) scratch[row * kTile + column + m] *= scale;
    }
    __syncwarp();
    wmma::load_matrix_sync(acc, scratch, kTile, wmma::mem_row_major);
    // P is lower triangular: tile row ti needs the corrections of blocks 0 .. ti.
    for (int kk = 0; kk <= ti; ++kk) {
      FragmentA a;
      FragmentB bm;
      wmma::load_matrix_sync(a, scores16 + ti * kTile * L::kScore16Stride + kk * kTile, L::kScore16Stride);
      wmma::load_matrix_sync(bm, delta + kk * kTile * L::kSliceStride + tj * kTile, L::kSliceStride);
      wmma::mma_sync(acc, a, bm, acc);
    }
    __syncwarp();
    wmma::store_matrix_sync(scratch, acc, kTile, wmma::mem_row_major);
    __syncwarp();
    write_tile(scratch, out + ti * kTile * out_row_stride + tj * kTile, out_row_stride, span.length - ti * kTile);
    __syncwarp();
  }
}

}  // namespace

void launch_output(const Problem& p, cudaStream_t stream) {
  require_head_sizes_128(p.in);
  const dim3 grid(static_cast<unsigned>(p.in.value_dim / kColumns), static_cast<unsigned>(p.in.chunks),
                  static_cast<unsigned>(p.in.batch * p.in.heads));
  const auto kernel_of = [](auto qk_tag, auto v_tag) {
    return output_kernel<typename decltype(qk_tag)::type, typename decltype(v_tag)::type, 128, 128>;
  };
  launch_for_dtypes(p.in, kernel_of, grid, kThreads, OutputLayout<128>::bytes, stream, p);
  host::check_launch("gated_delta_chunk_forward (output)");
}

}  // namespace strata::kernels::gdn
