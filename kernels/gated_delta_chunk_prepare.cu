// The chunked gated delta rule's first pass (see gated_delta_chunk.cuh): everything a chunk can
// compute without the state entering it. One block of 8 warps per (row, head, chunk):
//   G_i = g_first + ... + g_i                                   (in-chunk cumulative gate)
//   A_ij = beta_i exp(G_i - G_j) k_i.k_j for j < i, else 0      (tensor cores, float32)
//   T = (I + A)^-1                                              (float32, in shared memory)
//   W = T (beta exp(G) k),  U = T (beta v)                      (tensor cores, bfloat16 out)
//   k_to_end_i = k_i exp(G_last - G_i)
// so that the corrections are delta = U - W S_entering (the UT transform) and the chunk leaves
// S = exp(G_last) S_entering + k_to_end^T delta. T is inverted by blocks of 16: the four
// diagonal blocks by forward substitution, one thread per column holding it in registers (no
// synchronisation), then the block rows below, T_ij = -T_ii sum_{j <= m < i} A_im T_mj, one
// block row at a time. Padded steps (past the sequence or the document) have k = v = 0, beta = 0
// and g = 0: their rows of A, W and U vanish and G stays at the last real step's.
#include "gated_delta_chunk.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBlocks = kChunk / kTile;  // 16-row blocks of T

template <int kKeyDim, int kValueDim>
struct PrepareLayout {
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kValueStride = bf16_stride<kValueDim>;
  static constexpr int kSquareStride = float_stride<kChunk>, kInverseStride = bf16_stride<kChunk>;
  static constexpr int keys = 0;                                                // k, then beta exp(G) k (bfloat16)
  static constexpr int values = keys + aligned_bytes(kChunk * kKeyStride * 2);  // v, then beta v
  static constexpr int coupling = values + aligned_bytes(kChunk * kValueStride * 2);          // A (float32)
  static constexpr int inverse = coupling + aligned_bytes(kChunk * kSquareStride * 4);        // T (float32)
  static constexpr int inverse16 = inverse + aligned_bytes(kChunk * kSquareStride * 4);       // T (bfloat16)
  static constexpr int partial = inverse16 + aligned_bytes(kChunk * kInverseStride * 2);      // sum_m A_im T_mj
  static constexpr int scratch = partial + aligned_bytes((kBlocks - 1) * kTile * kTile * 4);  // a tile per warp
  static constexpr int gates = scratch + aligned_bytes(kWarps * kTile * kTile * 4);
  static constexpr int betas = gates + aligned_bytes(kChunk * 4);
  static constexpr int bytes = betas + aligned_bytes(kChunk * 4);
};

template <class QK, class V, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads, 2) prepare_kernel(Problem p) {
  using namespace nvcuda;
  using L = PrepareLayout<kKeyDim, kValueDim>;
  const auto& in = p.in;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const ChunkSpan span = chunk_span(in, c);
  const int64_t chunk_index = (static_cast<int64_t>(b) * in.heads + h) * in.chunks + c;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* keys = reinterpret_cast<bf16*>(shared + L::keys);
  auto* values = reinterpret_cast<bf16*>(shared + L::values);
  auto* coupling = reinterpret_cast<float*>(shared + L::coupling);
  auto* inverse = reinterpret_cast<float*>(shared + L::inverse);
  auto* inverse16 = reinterpret_cast<bf16*>(shared + L::inverse16);
  auto* partial = reinterpret_cast<float*>(shared + L::partial);
  auto* scratch = reinterpret_cast<float*>(shared + L::scratch) + warp * kTile * kTile;
  auto* gates = reinterpret_cast<float*>(shared + L::gates);
  auto* betas = reinterpret_cast<float*>(shared + L::betas);

  const auto* k_head = static_cast<const QK*>(in.k) + b * in.k_strides.batch +
                       static_cast<int64_t>(span.first) * in.k_strides.seq + h * in.k_strides.head;
  const auto* v_head = static_cast<const V*>(in.v) + b * in.v_strides.batch +
                       static_cast<int64_t>(span.first) * in.v_strides.seq + h * in.v_strides.head;
  stage_rows<QK, kKeyDim, kThreads>(k_head, in.k_strides.seq, span.length, keys);
  stage_rows<V, kValueDim, kThreads>(v_head, in.v_strides.seq, span.length, values);
  if (warp == 0) {
    // Two steps per lane, then an inclusive scan over the lanes.
    const int64_t token0 = (static_cast<int64_t>(b) * in.seq + span.first) * in.heads + h;
    float g[2], beta[2];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int i = 2 * lane + e;
      const bool real = i < span.length;
      g[e] = real ? in.g[token0 + i * in.heads] : 0.0f;
      beta[e] = real ? in.beta[token0 + i * in.heads] : 0.0f;
      betas[i] = beta[e];
    }
    float sum = g[0] + g[1];
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
      const float before = __shfl_up_sync(0xffffffffu, sum, offset);
      if (lane >= offset) sum += before;
    }
    const float first = sum - g[1];
    gates[2 * lane] = first;
    gates[2 * lane + 1] = sum;
    p.gates[chunk_index * kChunk + 2 * lane] = first;
    p.gates[chunk_index * kChunk + 2 * lane + 1] = sum;
  }
  staged_rows_wait();
  __syncthreads();

  // k k^T on or below the diagonal, one 16 x 16 tile per warp at a time.
  lower_chunk_gram<kKeyDim, L::kKeyStride, L::kSquareStride, kWarps>(coupling, keys, keys, warp);
  __syncthreads();

  // A: the strict lower triangle, gated and weighted (entries above it are never read).
  for (int e = threadIdx.x; e < kChunk * kChunk; e += kThreads) {
    const int i = e / kChunk, j = e % kChunk;
    if (j < i) coupling[i * L::kSquareStride + j] *= betas[i] * __expf(gates[i] - gates[j]);
  }
  __syncthreads();

  const float last_gate = gates[kChunk - 1];
  if (threadIdx.x < kBlocks * kTile) {
    // Diagonal block d of T, column l, by forward substitution: x_i = [i == l] - sum_{j<i} A_ij x_j
    // (zero above the diagonal falls out: x_i = 0 for i < l).
    const int d = threadIdx.x / kTile, l = threadIdx.x % kTile;
    const float* a = coupling + d * kTile * L::kSquareStride + d * kTile;
    float x[kTile];
#pragma unroll
    for (int i = 0; i < kTile; ++i) {
      float s = i == l ? 1.0f : 0.0f;
#pragma unroll
      for (int j = 0; j < i; ++j) s -= a[i * L::kSquareStride + j] * x[j];
      x[i] = s;
    }
#pragma unroll
    for (int i = 0; i < kTile; ++i) inverse[(d * kTile + i) * L::kSquareStride + d * kTile + l] = x[i];
  } else {
    // Meanwhile the other warps: k_to_end out, keys <- beta exp(G) k, values <- beta v.
    const int worker = threadIdx.x - kBlocks * kTile;
    constexpr int kWorkers = kThreads - kBlocks * kTile;
    bf16* to_end = p.k_to_end + chunk_index * kChunk * kKeyDim;
    for (int e = worker; e < kChunk * kKeyDim / 8; e += kWorkers) {
      const int i = e / (kKeyDim / 8), column = (e % (kKeyDim / 8)) * 8;
      float x[8], decayed[8];
      bf16* key = keys + i * L::kKeyStride + column;
      device::load<bf16, 8>(key, x);
      const float to_end_scale = __expf(last_gate - gates[i]), write_scale = betas[i] * __expf(gates[i]);
#pragma unroll
      for (int m = 0; m < 8; ++m) decayed[m] = x[m] * to_end_scale, x[m] *= write_scale;
      device::store<bf16, 8>(to_end + i * kKeyDim + column, decayed);
      device::store<bf16, 8>(key, x);
    }
    for (int e = worker; e < kChunk * kValueDim / 8; e += kWorkers) {
      const int i = e / (kValueDim / 8), column = (e % (kValueDim / 8)) * 8;
      float x[8];
      bf16* value = values + i * L::kValueStride + column;
      device::load<bf16, 8>(value, x);
#pragma unroll
      for (int m = 0; m < 8; ++m) x[m] *= betas[i];
      device::store<bf16, 8>(value, x);
    }
  }
  __syncthreads();

  // Block rows 1..3 of T below the diagonal: P_j = sum_{16 j <= m < 16 i} A[16 i + r][m] T[m][16 j + col],
  // then T_ij = -T_ii P_j.
  for (int bi = 1; bi < kBlocks; ++bi) {
    for (int e = threadIdx.x; e < bi * kTile * kTile; e += kThreads) {
      const int bj = e / (kTile * kTile), r = (e / kTile) % kTile, col = e % kTile;
      const float* a = coupling + (bi * kTile + r) * L::kSquareStride;
      float s = 0.0f;
      for (int m = bj * kTile; m < bi * kTile; ++m) s += a[m] * inverse[m * L::kSquareStride + bj * kTile + col];
      partial[e] = s;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < bi * kTile * kTile; e += kThreads) {
      const int bj = e / (kTile * kTile), r = (e / kTile) % kTile, col = e % kTile;
      const float* t_ii = inverse + (bi * kTile + r) * L::kSquareStride + bi * kTile;
      const float* p_j = partial + bj * kTile * kTile + col;
      float s = 0.0f;
#pragma unroll
      for (int m = 0; m < kTile; ++m) s += t_ii[m] * p_j[m * kTile];
      inverse[(bi * kTile + r) * L::kSquareStride + bj * kTile + col] = -s;
    }
    __syncthreads();
  }

  // T in bfloat16, zero above the diagonal (never written in float32 there).
  for (int e = threadIdx.x; e < kChunk * kChunk; e += kThreads) {
    const int i = e / kChunk, j = e % kChunk;
    const bf16 t = __float2bfloat16_rn(j <= i ? inverse[i * L::kSquareStride + j] : 0.0f);
    inverse16[i * L::kInverseStride + j] = t;
    p.inverse[chunk_index * kChunk * kChunk + e] = t;  // for the backward
  }
  __syncthreads();

  // W = T keys and U = T values, a 16 x 16 output tile per warp at a time, staged through the
  // warp's scratch tile and written out in bfloat16. T is lower triangular: tile row ti needs
  // only its first ti + 1 column blocks.
  constexpr int kKeyTiles = kChunk / kTile * (kKeyDim / kTile), kValueTiles = kChunk / kTile * (kValueDim / kTile);
  for (int t = warp; t < kKeyTiles + kValueTiles; t += kWarps) {
    const bool key = t < kKeyTiles;
    const int index = key ? t : t - kKeyTiles;
    const int columns = key ? kKeyDim : kValueDim;
    const int ti = index / (columns / kTile), tj = index % (columns / kTile);
    const bf16* right = key ? keys : values;
    const int right_stride = key ? L::kKeyStride : L::kValueStride;
    Accumulator acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk <= ti; ++kk) {
      FragmentA a;
      FragmentB bm;
      wmma::load_matrix_sync(a, inverse16 + ti * kTile * L::kInverseStride + kk * kTile, L::kInverseStride);
      wmma::load_matrix_sync(bm, right + kk * kTile * right_stride + tj * kTile, right_stride);
      wmma::mma_sync(acc, a, bm, acc);
    }
    wmma::store_matrix_sync(scratch, acc, kTile, wmma::mem_row_major);
    __syncwarp();
    bf16* out = (key ? p.w : p.u) + (chunk_index * kChunk + ti * kTile) * columns + tj * kTile;
    write_tile(scratch, out, columns, kTile);
    __syncwarp();
  }
}

}  // namespace

void launch_prepare(const Problem& p, cudaStream_t stream) {
  require_head_sizes_128(p.in);
  const dim3 grid(static_cast<unsigned>(p.in.chunks), static_cast<unsigned>(p.in.heads),
                  static_cast<unsigned>(p.in.batch));
  const auto kernel_of = [](auto qk_tag, auto v_tag) {
    return prepare_kernel<typename decltype(qk_tag)::type, typename decltype(v_tag)::type, 128, 128>;
  };
  launch_for_dtypes(p.in, kernel_of, grid, kThreads, PrepareLayout<128, 128>::bytes, stream, p);
  host::check_launch("gated_delta_chunk_forward (prepare)");
}

}  // namespace strata::kernels::gdn
