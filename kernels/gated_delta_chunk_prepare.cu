// The chunked gated delta rule's first pass (see gated_delta_chunk.cuh): everything a chunk can
// compute without the state entering it. One block of 8 warps per (row, head, chunk):
//   G_i = g_first + ... + g_i                                   (in-chunk cumulative gate)
//   A_ij = beta_i exp(G_i - G_j) k_i.k_j for j < i, else 0      (mma.sync, float32)
//   T = (I + A)^-1                                              (float32, CUDA cores)
//   W = T (beta exp(G) k),  U = T (beta v)                      (mma.sync, bfloat16 out)
// so that the corrections are delta = U - W S_entering (the UT transform) and the chunk leaves
// S = exp(G_last) S_entering + k^T diag(exp(G_last - G)) delta. Four block-wide barriers, one after
// each phase:
//   1. k staged in shared memory (v follows, landing during 2); warp 0 scans the gates.
//   2. A's ten 16 x 16 blocks on or below the diagonal, one per warp (the two warps with diagonal
//      blocks take two, as these need one load of the keys per step), gated and masked in the
//      accumulators (mma_fragments.cuh) and stored in float32.
//   3. T's four diagonal blocks by forward substitution, one thread per column (two warps), while
//      the six other warps scale the keys and values in place.
//   4. T's blocks below the diagonal, T_id = -T_ii sum_{d <= m < i} A_im T_md. The columns of T
//      never mix in this, so a warp that owns four columns of block column d finishes them alone
//      (warp barriers only) once the diagonal blocks are known: warps 0-3 block column 0's (3
//      blocks each), warps 4-7 block column 1's and then 2's (2 blocks, then 1).
//   5. W and U on mma.sync, T rounded to bfloat16 as A operands, the scaled keys and values as B
//      operands; each warp stages its output rows over A and T's float32 blocks (free by then) and
//      writes them out in full rows.
// T stays float32 until it is rounded for W, U and the backward (no bfloat16 or tf32 in making it).
// Padded steps (past the sequence or the document) have k = v = 0, beta = 0 and g = 0: their rows
// of A, W and U vanish and G stays at the last real step's.
#include "gated_delta_chunk.cuh"
#include "mma_fragments.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBlocks = kChunk / 16;  // 16-row blocks of A and T
static_assert(kBlocks == 4 && kWarps == 8, "the phases' division of work is written for 4 blocks and 8 warps");

// A or T as its blocks on or below the diagonal, float32: block row i's rows hold columns
// 0 .. 16 i + 15, padded by 4 floats so that the float4 loads of 8 consecutive rows fall in
// different banks.
__host__ __device__ constexpr int lower_stride(int block_row) { return 16 * (block_row + 1) + 4; }
// Floats before block row i: 16 (lower_stride(0) + ... + lower_stride(i - 1)).
__host__ __device__ constexpr int lower_start(int block_row) {
  return 128 * block_row * (block_row - 1) + 320 * block_row;
}
static_assert(lower_start(1) == 16 * lower_stride(0) &&
              lower_start(kBlocks) == lower_start(kBlocks - 1) + 16 * lower_stride(kBlocks - 1));

struct LowerBlocks {
  static constexpr int kFloats = lower_start(kBlocks);
  float* base;
  // Row r of block row i (chunk row 16 i + r), indexed by the chunk's columns.
  __device__ __forceinline__ float* row(int i, int r) const { return base + lower_start(i) + r * lower_stride(i); }
};

template <int kKeyDim, int kValueDim>
struct PrepareLayout {
  static_assert(kKeyDim == kValueDim, "W and U are split alike between the warps");
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kValueStride = bf16_stride<kValueDim>;
  static constexpr int kInverseStride = bf16_stride<kChunk>;
  static constexpr int kWarpColumns = kKeyDim / 2;  // the columns of W or U a warp makes
  static constexpr int kStagedStride = bf16_stride<kWarpColumns>;
  static constexpr int keys = 0;                                                // k, then beta exp(G) k (bfloat16)
  static constexpr int values = keys + aligned_bytes(kChunk * kKeyStride * 2);  // v, then beta v
  static constexpr int coupling = values + aligned_bytes(kChunk * kValueStride * 2);  // A (LowerBlocks)
  static constexpr int inverse = coupling + aligned_bytes(LowerBlocks::kFloats * 4);  // T (LowerBlocks)
  static constexpr int inverse16 = inverse + aligned_bytes(LowerBlocks::kFloats * 4);  // T (bfloat16)
  static constexpr int gates = inverse16 + aligned_bytes(kChunk * kInverseStride * 2);
  static constexpr int betas = gates + aligned_bytes(kChunk * 4);
  static constexpr int bytes = betas + aligned_bytes(kChunk * 4);
  // Phase 5: each warp's 16 rows of W or U (bfloat16) on their way out, over A and T.
  static constexpr int staged = coupling;
  static constexpr int kStagedBytes = 16 * kStagedStride * 2;
  static_assert(staged + kWarps * kStagedBytes <= inverse16);
};

// A's block (bi, bj), bj <= bi: k k^T on tensor cores, then weighted and gated in the
// accumulators, zero on and above the diagonal.
template <bool kDiagonal, int kKeyDim, int kKeyStride>
__device__ __forceinline__ void coupling_block(int bi, int bj, const bf16* keys, const float* gates,
                                               const float* betas, LowerBlocks coupling, int lane) {
  const int g = lane / 4, t = lane % 4;
  float dot[2][4] = {};
#pragma unroll
  for (int kk = 0; kk < kKeyDim / 16; ++kk) {
    uint32_t a[4], b[4];
    mma::load_matrices(a, mma::quadrants_down(keys + 16 * bi * kKeyStride + 16 * kk, kKeyStride, lane));
    if constexpr (kDiagonal) {
      // The same four matrices, in quadrants_across's order.
      b[0] = a[0], b[1] = a[2], b[2] = a[1], b[3] = a[3];
    } else {
      mma::load_matrices(b, mma::quadrants_across(keys + 16 * bj * kKeyStride + 16 * kk, kKeyStride, lane));
    }
    mma::mma_bf16(dot[0], a, b[0], b[1]);
    mma::mma_bf16(dot[1], a, b[2], b[3]);
  }
#pragma unroll
  for (int half = 0; half < 2; ++half)
#pragma unroll
    for (int pair = 0; pair < 2; ++pair) {
      const int r = g + 8 * pair, i = 16 * bi + r, j = 16 * bj + 8 * half + 2 * t;
      float a[2];
#pragma unroll
      for (int e = 0; e < 2; ++e)
        a[e] = j + e < i ? dot[half][2 * pair + e] * betas[i] * __expf(gates[i] - gates[j + e]) : 0.0f;
      *reinterpret_cast<float2*>(coupling.row(bi, r) + j) = make_float2(a[0], a[1]);
    }
}

// T's diagonal block d, column l, by forward substitution, x_i = [i == l] - sum_{j<i} A_ij x_j,
// each x_j taken off the rows below as soon as it is final (a chain of 15 dependent steps; x_i = 0
// for i < l falls out). Written in float32 and in bfloat16, zeros above the diagonal included.
__device__ __forceinline__ void invert_diagonal_block(int d, int l, LowerBlocks coupling, LowerBlocks inverse,
                                                      bf16* inverse16, int inverse16_stride) {
  float x[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) x[i] = i == l ? 1.0f : 0.0f;
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int i = j + 1; i < 16; ++i) x[i] -= coupling.row(d, i)[16 * d + j] * x[j];
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    inverse.row(d, i)[16 * d + l] = x[i];
    inverse16[(16 * d + i) * inverse16_stride + 16 * d + l] = __float2bfloat16_rn(x[i]);
  }
}

// T's columns 16 d + 4 group .. + 3 below the diagonal block, block by block:
// P = sum_{d <= m < i} A_im T_md, then T_id = -T_ii P. Lane (r, h) = (lane % 16, lane / 16) makes
// row r, columns + 2h and + 2h + 1; P passes between the lanes where T_id goes.
__device__ __forceinline__ void finish_columns(int d, int group, LowerBlocks coupling, LowerBlocks inverse,
                                               bf16* inverse16, int inverse16_stride, int lane) {
  const int r = lane % 16, column = 16 * d + 4 * group + 2 * (lane / 16);
  for (int i = d + 1; i < kBlocks; ++i) {
    const float* a = coupling.row(i, r);
    float p[2][2] = {};  // [column][k % 2]: two sums a column, for shorter chains of dependent adds
    for (int m = d; m < i; ++m) {
      const float* t_md = inverse.row(m, 0) + column;
#pragma unroll
      for (int k4 = 0; k4 < 4; ++k4) {
        const float4 a4 = *reinterpret_cast<const float4*>(a + 16 * m + 4 * k4);
        const float ak[4] = {a4.x, a4.y, a4.z, a4.w};
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          const float2 t = *reinterpret_cast<const float2*>(t_md + (4 * k4 + k) * lower_stride(m));
          p[0][k % 2] += ak[k] * t.x;
          p[1][k % 2] += ak[k] * t.y;
        }
      }
    }
    const float* p_block = inverse.row(i, 0) + column;
    float* out = inverse.row(i, r) + column;
    *reinterpret_cast<float2*>(out) = make_float2(p[0][0] + p[0][1], p[1][0] + p[1][1]);
    __syncwarp();
    const float* t_ii = inverse.row(i, r) + 16 * i;
    float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
    for (int s4 = 0; s4 < 4; ++s4) {
      const float4 t4 = *reinterpret_cast<const float4*>(t_ii + 4 * s4);
      const float ts[4] = {t4.x, t4.y, t4.z, t4.w};
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const float2 ps = *reinterpret_cast<const float2*>(p_block + (4 * s4 + s) * lower_stride(i));
        s0 += ts[s] * ps.x;
        s1 += ts[s] * ps.y;
      }
    }
    __syncwarp();  // every lane has read P
    *reinterpret_cast<float2*>(out) = make_float2(-s0, -s1);
    *reinterpret_cast<__nv_bfloat162*>(inverse16 + (16 * i + r) * inverse16_stride + column) =
        __floats2bfloat162_rn(-s0, -s1);
    __syncwarp();  // T_id is read for the next block
  }
}

// Three blocks an SM (66 KB of shared memory each, at most 80 registers a thread).
template <class QK, class V, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads, 3) prepare_kernel(Problem p) {
  using L = PrepareLayout<kKeyDim, kValueDim>;
  const auto& in = p.in;
  const int h = blockIdx.x, c = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const ChunkSpan span = chunk_span(in, c);
  const int64_t chunk_index = (static_cast<int64_t>(b) * in.heads + h) * in.chunks + c;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* keys = reinterpret_cast<bf16*>(shared + L::keys);
  auto* values = reinterpret_cast<bf16*>(shared + L::values);
  const LowerBlocks coupling{reinterpret_cast<float*>(shared + L::coupling)};
  const LowerBlocks inverse{reinterpret_cast<float*>(shared + L::inverse)};
  auto* inverse16 = reinterpret_cast<bf16*>(shared + L::inverse16);
  auto* gates = reinterpret_cast<float*>(shared + L::gates);
  auto* betas = reinterpret_cast<float*>(shared + L::betas);

  // 1. k and v in; G and beta.
  // k in a first group of copies and v in a second, which lands while the warps make A from k.
  stage_head_rows<QK, kKeyDim, kThreads>(in.k, in.k_strides, b, span, key_head_of(in, h), keys);
  __pipeline_commit();
  stage_head_rows<V, kValueDim, kThreads>(in.v, in.v_strides, b, span, h, values);
  __pipeline_commit();
  if (warp == 0) {
    // Two steps per lane, then an inclusive scan over the lanes.
    const int64_t token0 = (static_cast<int64_t>(b) * in.seq + span.first) * in.heads + h;
    float g[2], beta[2];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int i = 2 * lane + e;
      const bool real = i < span.length;
      g[e] = real ? per_token_at(in.g, in.g_dtype, token0 + i * in.heads) : 0.0f;
      beta[e] = real ? per_token_at(in.beta, in.beta_dtype, token0 + i * in.heads) : 0.0f;
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
  __pipeline_wait_prior(1);
  __syncthreads();

  // 2. A: warps 0-5 the blocks below the diagonal, (1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2);
  // warps 6 and 7 two diagonal blocks each.
  if (warp < 6) {
    const int bi = 1 + (warp >= 1) + (warp >= 3), bj = warp - bi * (bi - 1) / 2;
    coupling_block<false, kKeyDim, L::kKeyStride>(bi, bj, keys, gates, betas, coupling, lane);
  } else {
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      const int d = 2 * (warp - 6) + s;
      coupling_block<true, kKeyDim, L::kKeyStride>(d, d, keys, gates, betas, coupling, lane);
    }
  }
  staged_rows_wait();  // v
  __syncthreads();

  // 3. T's diagonal blocks (warps 0 and 1); meanwhile the other warps: keys <- beta exp(G) k,
  // values <- beta v.
  if (warp < 2) {
    invert_diagonal_block(threadIdx.x / 16, threadIdx.x % 16, coupling, inverse, inverse16, L::kInverseStride);
  } else {
    const int worker = threadIdx.x - 64;
    constexpr int kWorkers = kThreads - 64;
    for (int e = worker; e < kChunk * kKeyDim / 8; e += kWorkers) {
      const int i = e / (kKeyDim / 8), column = (e % (kKeyDim / 8)) * 8;
      float x[8];
      bf16* key = keys + i * L::kKeyStride + column;
      device::load<bf16, 8>(key, x);
      const float write_scale = betas[i] * __expf(gates[i]);
#pragma unroll
      for (int m = 0; m < 8; ++m) x[m] *= write_scale;
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

  // 4. T below the diagonal blocks, four columns a warp.
  if (warp < 4) {
    finish_columns(0, warp, coupling, inverse, inverse16, L::kInverseStride, lane);
  } else {
    finish_columns(1, warp - 4, coupling, inverse, inverse16, L::kInverseStride, lane);
    finish_columns(2, warp - 4, coupling, inverse, inverse16, L::kInverseStride, lane);
  }
  __syncthreads();

  // T in bfloat16 for the backward, zero above the diagonal blocks (never written in shared memory),
  // where the forward keeps its intermediates.
  if (in.keep_for_backward) {
    bf16* inverse_out = p.inverse + chunk_index * kChunk * kChunk;
    for (int e = threadIdx.x; e < kChunk * kChunk / 8; e += kThreads) {
      const int i = e / (kChunk / 8), column = (e % (kChunk / 8)) * 8;
      uint4 x = make_uint4(0, 0, 0, 0);
      if (column < 16 * (i / 16 + 1)) x = *reinterpret_cast<const uint4*>(inverse16 + i * L::kInverseStride + column);
      *reinterpret_cast<uint4*>(inverse_out + i * kChunk + column) = x;
    }
  }

  // 5. W = T keys (warps 0-3) and U = T values (warps 4-7), half of the columns a warp, row blocks
  // `pair` and 3 - `pair`: T is lower triangular, so row block i takes i + 1 steps, 5 a warp.
  const bool makes_w = warp < 4;
  const int half = warp / 2 % 2, pair = warp % 2;
  const bf16* right = makes_w ? keys : values;
  const int right_stride = makes_w ? L::kKeyStride : L::kValueStride;
  constexpr int kColumns = kKeyDim;  // of W and of U
  bf16* out = (makes_w ? p.w : p.u) + chunk_index * kChunk * kColumns + half * L::kWarpColumns;
  auto* staged = reinterpret_cast<bf16*>(shared + L::staged + warp * L::kStagedBytes);
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    const int rows = s == 0 ? pair : kBlocks - 1 - pair;
    float acc[L::kWarpColumns / 8][4] = {};
    for (int kk = 0; kk <= rows; ++kk) {
      uint32_t ta[4];
      mma::load_matrices(
          ta, mma::quadrants_down(inverse16 + 16 * rows * L::kInverseStride + 16 * kk, L::kInverseStride, lane));
#pragma unroll
      for (int nb = 0; nb < L::kWarpColumns / 16; ++nb) {
        uint32_t bv[4];
        mma::load_matrices_transposed(
            bv, mma::quadrants_down(right + 16 * kk * right_stride + half * L::kWarpColumns + 16 * nb, right_stride,
                                    lane));
        mma::mma_bf16(acc[2 * nb], ta, bv[0], bv[1]);
        mma::mma_bf16(acc[2 * nb + 1], ta, bv[2], bv[3]);
      }
    }
#pragma unroll
    for (int nb = 0; nb < L::kWarpColumns / 16; ++nb) {
      uint32_t rounded[4];
      mma::a_operand(rounded, acc[2 * nb], acc[2 * nb + 1]);
      mma::store_matrices(mma::quadrants_down(staged + 16 * nb, L::kStagedStride, lane), rounded);
    }
    __syncwarp();
    for (int e = lane; e < 16 * L::kWarpColumns / 8; e += 32) {
      const int row = e / (L::kWarpColumns / 8), column = (e % (L::kWarpColumns / 8)) * 8;
      *reinterpret_cast<uint4*>(out + (16 * rows + row) * kColumns + column) =
          *reinterpret_cast<const uint4*>(staged + row * L::kStagedStride + column);
    }
    __syncwarp();  // read out before the next row block is staged
  }
}

}  // namespace

void launch_prepare(const Problem& p, cudaStream_t stream) {
  require_head_sizes_128(p.in);
  // Heads vary fastest: value heads that share a key head read its k close together (from L2).
  const dim3 grid(static_cast<unsigned>(p.in.heads), static_cast<unsigned>(p.in.chunks),
                  static_cast<unsigned>(p.in.batch));
  const auto kernel_of = [](auto qk_tag, auto v_tag) {
    return prepare_kernel<typename decltype(qk_tag)::type, typename decltype(v_tag)::type, 128, 128>;
  };
  launch_for_dtypes(p.in, kernel_of, grid, kThreads, PrepareLayout<128, 128>::bytes, stream, p);
  host::check_launch("gated_delta_chunk_forward (prepare)");
}

}  // namespace strata::kernels::gdn
