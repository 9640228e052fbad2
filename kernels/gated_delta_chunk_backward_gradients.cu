// The chunked gated delta rule's backward, last pass (see gated_delta_chunk_backward.cuh): every
// input gradient of one chunk from its inputs, dO, delta, d_delta (the states pass's), the state
// S entering the chunk and dH, the gradient of the state leaving it. With X = (dO delta^T) o E o
// causal, dW = -d_delta S^T, dV = T^T d_delta, dKb = T^T dW and
//   P = T^T dT = dV (diag(beta) v)^T + dKb (diag(beta gamma) k)^T,   dA = -T^T dT T^T = -P T^T,
//   Z = strictly_lower(dA o diag(beta) E),
//   dq = diag(gamma) dO S^T + X k
//   dk = diag(Gamma / gamma) delta dH^T + X^T q + (Z + Z^T) k + diag(beta gamma) dKb
//   dv = diag(beta) dV
//   dbeta_i = dV_i . v_i + gamma_i dKb_i . k_i + sum_j dA_ij E_ij (k_i . k_j)
// and dG, the gradient of the in-chunk cumulative gates, from every place exp(G) enters (the
// rows and columns of X o (q k^T) and Z o (k k^T), q.dq's decayed part, the W rows, the keys'
// decay to the chunk's end, and exp(G_last) in H), summed from the chunk's end for dg.
//
// One block of 8 warps per (row, head, chunk), on mma.sync (mma_fragments.cuh). Warp w owns row
// block r = w % 4 (tokens 16 r .. 16 r + 15) and column half w / 4 of the 128-wide products; dq
// and dk stay in its accumulators from start to end, and products that feed a product as its
// left operand stay in registers. Four phases, each after a block barrier:
//   1. (dO, delta, d_delta, S and dH landed; q, k, v and T still in flight) dO S^T, delta dH^T
//      and d_delta S^T, one pass over the value steps; dW rounded into shared memory.
//   2. dKb and dV (T^T's blocks at or right of the diagonal only), dv out; the warp's share of
//      P's and of dO delta^T's blocks at or left of the diagonal, summed over its column half, to
//      shared memory in fragment order (over S and dH).
//   3. Each warp adds its partner's shares (the other half of the same rows): both hold the same
//      P and X rows. X's rows times k into dq; dA = -P T^T and Z in registers, Z's rows times k
//      into dk; X and Z rounded into shared memory (over dO and delta).
//   4. X^T q and Z^T k from X's and Z's blocks transposed on the way in; dq and dk out through
//      per-warp staging rows (over S and dH) in whole rows; dg and dbeta.
// The row and column sums for dG and dbeta go to a per-warp array (each warp's lanes in turn),
// summed in a fixed order at the end: no atomics. The parts of q k^T and k k^T that dG and dbeta
// need are each warp's column half, never the whole product (the sums are linear in them).
#include "gated_delta_chunk_backward.cuh"
#include "mma_fragments.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBlocks = kChunk / 16;  // 16-token blocks of a chunk
static_assert(kBlocks == 4 && kWarps == 2 * kBlocks, "warp w takes row block w % 4 and column half w / 4");

template <int kDim>
struct GradientLayout {
  static constexpr int kRowStride = bf16_stride<kDim>, kSquareStride = bf16_stride<kChunk>;
  static constexpr int kHalf = kDim / 2;      // a warp's columns of the 128-wide products
  static constexpr int kTiles = kHalf / 8;    // its 8-column accumulator tiles
  static constexpr int kSquareTiles = kChunk / 8;
  static constexpr int kRows = aligned_bytes(kChunk * kRowStride * 2);
  static constexpr int kState = aligned_bytes(kDim * kRowStride * 2);
  static constexpr int d_out = 0, delta = kRows, d_delta = 2 * kRows, queries = 3 * kRows, keys = 4 * kRows,
                       values = 5 * kRows, d_w = 6 * kRows;
  static constexpr int state = 7 * kRows, d_state = state + kState;  // S and dH, bfloat16 [kDim][kRowStride]
  // Phase 2's partial P and X rows (float32, per warp: 2 x kSquareTiles tiles of 32 lanes' float4),
  // over S and dH; phase 3's X and Z (bfloat16 [kChunk][kSquareStride]) over dO and delta.
  static constexpr int exchange = state;
  static constexpr int kExchangeWarp = 2 * kSquareTiles * 32 * 16;
  static_assert(kWarps * kExchangeWarp <= 2 * kState, "the partial products fit over S and dH");
  static constexpr int x16 = d_out, z16 = delta;
  // At the end, each warp's dq and dk rows (float32, 16 x kStagedStride) on their way out, over S
  // and dH (8 floats more than a row: a half warp's 8-byte stores then fall in different banks).
  static constexpr int staged = state, kStagedStride = kHalf + 8;
  static_assert(kWarps * 16 * kStagedStride * 4 <= 2 * kState, "the staged rows fit over S and dH");
  static_assert(kChunk * kSquareStride * 2 <= kRows, "X and Z fit over dO and delta");
  static constexpr int inverse = d_state + kState;  // T, bfloat16 [kChunk][kSquareStride]
  static constexpr int gates = inverse + aligned_bytes(kChunk * kSquareStride * 2);
  static constexpr int betas = gates + aligned_bytes(kChunk * 4);
  static constexpr int gate_parts = betas + aligned_bytes(kChunk * 4);  // float32 [kWarps][kChunk]
  static constexpr int beta_parts = gate_parts + aligned_bytes(kWarps * kChunk * 4);
  static constexpr int bytes = beta_parts + aligned_bytes(kWarps * kChunk * 4);
};

template <class QK, class V, int kDim>
__global__ void __launch_bounds__(kThreads, 1) backward_gradients_kernel(BackwardProblem p) {
  using L = GradientLayout<kDim>;
  constexpr int kRS = L::kRowStride, kSS = L::kSquareStride, kTiles = L::kTiles, kSquareTiles = L::kSquareTiles;
  constexpr int kHalfSteps = L::kHalf / 16;  // 16-wide steps over a warp's column half
  const auto& in = p.forward.in;
  const int h = blockIdx.x, c = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int r = warp % kBlocks, half = warp / kBlocks, column0 = half * L::kHalf;
  const int row_low = 16 * r + g, row_high = row_low + 8;
  const ChunkSpan span = chunk_span(in, c);
  const int64_t chunk_index = (static_cast<int64_t>(b) * in.heads + h) * in.chunks + c;
  const int64_t token0 = (static_cast<int64_t>(b) * in.seq + span.first) * in.heads + h;  // [B, T, H] index
  const int64_t out_row_stride = in.heads * kDim;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* d_out = reinterpret_cast<bf16*>(shared + L::d_out);
  auto* delta = reinterpret_cast<bf16*>(shared + L::delta);
  auto* d_delta = reinterpret_cast<bf16*>(shared + L::d_delta);
  auto* queries = reinterpret_cast<bf16*>(shared + L::queries);
  auto* keys = reinterpret_cast<bf16*>(shared + L::keys);
  auto* values = reinterpret_cast<bf16*>(shared + L::values);
  auto* d_w = reinterpret_cast<bf16*>(shared + L::d_w);
  auto* state = reinterpret_cast<bf16*>(shared + L::state);
  auto* d_state = reinterpret_cast<bf16*>(shared + L::d_state);
  auto* exchange = reinterpret_cast<float4*>(shared + L::exchange);
  auto* x16 = reinterpret_cast<bf16*>(shared + L::x16);
  auto* z16 = reinterpret_cast<bf16*>(shared + L::z16);
  auto* inverse = reinterpret_cast<bf16*>(shared + L::inverse);
  auto* gates = reinterpret_cast<float*>(shared + L::gates);
  auto* betas = reinterpret_cast<float*>(shared + L::betas);
  float* gate_part = reinterpret_cast<float*>(shared + L::gate_parts) + warp * kChunk;  // this warp's dG terms
  float* beta_part = reinterpret_cast<float*>(shared + L::beta_parts) + warp * kChunk;  // and dbeta terms

  // Phase 1's operands as one group of asynchronous copies, then phase 2's (q, k and v widened
  // from float32 where they are).
  copy_rows<kChunk, kDim, kThreads>(p.d_out + chunk_index * kChunk * kDim, kDim, d_out, kRS);
  copy_rows<kChunk, kDim, kThreads>(p.forward.u + chunk_index * kChunk * kDim, kDim, delta, kRS);
  copy_rows<kChunk, kDim, kThreads>(p.d_delta + chunk_index * kChunk * kDim, kDim, d_delta, kRS);
  copy_rows<kDim, kDim, kThreads>(p.forward.states + chunk_index * kDim * kDim, kDim, state, kRS);
  copy_rows<kDim, kDim, kThreads>(p.d_states + chunk_index * kDim * kDim, kDim, d_state, kRS);
  __pipeline_commit();
  copy_rows<kChunk, kChunk, kThreads>(p.forward.inverse + chunk_index * kChunk * kChunk, kChunk, inverse, kSS);
  const int key_head = key_head_of(in, h);
  stage_head_rows<QK, kDim, kThreads>(in.q, in.q_strides, b, span, key_head, queries);
  stage_head_rows<QK, kDim, kThreads>(in.k, in.k_strides, b, span, key_head, keys);
  stage_head_rows<V, kDim, kThreads>(in.v, in.v_strides, b, span, h, values);
  __pipeline_commit();
  if (threadIdx.x < kChunk) {
    const int i = threadIdx.x;
    gates[i] = p.forward.gates[chunk_index * kChunk + i];
    const int64_t token = token0 + static_cast<int64_t>(i) * in.heads;
    betas[i] = i < span.length ? per_token_at(in.beta, in.beta_dtype, token) : 0.0f;
  }
  gate_part[lane] = gate_part[lane + 32] = 0.0f;
  beta_part[lane] = beta_part[lane + 32] = 0.0f;
  __pipeline_wait_prior(1);
  __syncthreads();
  const float last_gate = gates[kChunk - 1];
  const float gate_low = gates[row_low], gate_high = gates[row_high];
  const float gamma_low = __expf(gate_low), gamma_high = __expf(gate_high);
  const float beta_low = betas[row_low], beta_high = betas[row_high];

  // Sums over the lanes of a warp's per-row (low: row g, high: row g + 8 of its block) and
  // per-column (tile n's columns 8 n + 2t and + 1, summed over the tile's rows) values, added to
  // this warp's entries of `part` by one lane per entry.
  const auto add_rows = [&](float* part, float low, float high) {
#pragma unroll
    for (int offset = 1; offset < 4; offset *= 2) {
      low += __shfl_xor_sync(0xffffffffu, low, offset);
      high += __shfl_xor_sync(0xffffffffu, high, offset);
    }
    if (t == 0) part[row_low] += low, part[row_high] += high;
    __syncwarp();
  };
  const auto add_columns = [&](float* part, int n, float even, float odd) {
#pragma unroll
    for (int offset = 4; offset < 32; offset *= 2) {
      even += __shfl_xor_sync(0xffffffffu, even, offset);
      odd += __shfl_xor_sync(0xffffffffu, odd, offset);
    }
    if (g == 0) part[8 * n + 2 * t] += even, part[8 * n + 2 * t + 1] += odd;
    __syncwarp();
  };
  // The dots of the warp's rows of x (its column half) with the same rows and columns of `rows`
  // (bfloat16 in shared memory), per lane: its columns only, for add_rows.
  const auto row_dots = [&](const float(&x)[kTiles][4], const bf16* rows, float& low, float& high) {
    low = high = 0.0f;
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      const int column = column0 + 8 * n + 2 * t;
      const uint32_t at_low = *reinterpret_cast<const uint32_t*>(rows + row_low * kRS + column);
      const uint32_t at_high = *reinterpret_cast<const uint32_t*>(rows + row_high * kRS + column);
      low += x[n][0] * mma::low_half(at_low) + x[n][1] * mma::high_half(at_low);
      high += x[n][2] * mma::low_half(at_high) + x[n][3] * mma::high_half(at_high);
    }
  };
  // The warp's 16 x 16 jb-th blocks of a product left of (and on) the diagonal, C[:, 16 jb ..] +=
  // A_rows B^T over the warp's column half, A's rows at `a` (row block r) and B's at `b` (row
  // blocks jb <= r), both bfloat16 [.][kRS] in shared memory.
  const auto lower_rows_times = [&](float(&acc)[kSquareTiles][4], const bf16* a, const bf16* b_rows) {
#pragma unroll
    for (int kk = 0; kk < kHalfSteps; ++kk) {
      uint32_t fa[4];
      mma::load_matrices(fa, mma::quadrants_down(a + 16 * r * kRS + column0 + 16 * kk, kRS, lane));
#pragma unroll
      for (int jb = 0; jb < kBlocks; ++jb) {
        if (jb > r) continue;
        uint32_t fb[4];
        mma::load_matrices(fb, mma::quadrants_across(b_rows + 16 * jb * kRS + column0 + 16 * kk, kRS, lane));
        mma::mma_bf16(acc[2 * jb], fa, fb[0], fb[1]);
        mma::mma_bf16(acc[2 * jb + 1], fa, fb[2], fb[3]);
      }
    }
  };
  // acc += A B, A the 16 x 16 operand, B the warp's column half of 16 rows at `b_rows` (bfloat16).
  const auto add_times_rows = [&](float(&acc)[kTiles][4], const uint32_t(&a)[4], const bf16* b_rows) {
#pragma unroll
    for (int nb = 0; nb < kHalfSteps; ++nb) {
      uint32_t fb[4];
      mma::load_matrices_transposed(fb, mma::quadrants_down(b_rows + column0 + 16 * nb, kRS, lane));
      mma::mma_bf16(acc[2 * nb], a, fb[0], fb[1]);
      mma::mma_bf16(acc[2 * nb + 1], a, fb[2], fb[3]);
    }
  };

  // The warp's rows of a lower-triangular M (its accumulators m, zero right of the diagonal)
  // rounded to A operands: acc += M k, and M in bfloat16 to `staged` (by the warp of the first
  // column half) for the products with M^T in phase 4.
  const auto round_and_times_keys = [&](const float(&m)[kSquareTiles][4], bf16* staged, float(&acc)[kTiles][4]) {
#pragma unroll
    for (int jb = 0; jb < kBlocks; ++jb) {
      if (jb > r) continue;
      uint32_t a[4];
      mma::a_operand(a, m[2 * jb], m[2 * jb + 1]);
      if (half == 0) mma::store_matrices(mma::quadrants_down(staged + 16 * r * kSS + 16 * jb, kSS, lane), a);
      add_times_rows(acc, a, keys + 16 * jb * kRS);
    }
  };

  // 1. The products with the states over the value steps: dq = diag(gamma) dO S^T, dk =
  // diag(Gamma / gamma) delta dH^T, dW = -d_delta S^T (bfloat16, to shared memory).
  float dq[kTiles][4] = {}, dk[kTiles][4] = {};
  {
    float dw[kTiles][4] = {};
#pragma unroll
    for (int kk = 0; kk < kDim / 16; ++kk) {
      uint32_t oa[4], ea[4], da[4];
      mma::load_matrices(oa, mma::quadrants_down(d_out + 16 * r * kRS + 16 * kk, kRS, lane));
      mma::load_matrices(ea, mma::quadrants_down(delta + 16 * r * kRS + 16 * kk, kRS, lane));
      mma::load_matrices(da, mma::quadrants_down(d_delta + 16 * r * kRS + 16 * kk, kRS, lane));
#pragma unroll
      for (int nb = 0; nb < kHalfSteps; ++nb) {
        uint32_t bs[4], bh[4];
        mma::load_matrices(bs, mma::quadrants_across(state + (column0 + 16 * nb) * kRS + 16 * kk, kRS, lane));
        mma::load_matrices(bh, mma::quadrants_across(d_state + (column0 + 16 * nb) * kRS + 16 * kk, kRS, lane));
        mma::mma_bf16(dq[2 * nb], oa, bs[0], bs[1]);
        mma::mma_bf16(dq[2 * nb + 1], oa, bs[2], bs[3]);
        mma::mma_bf16(dw[2 * nb], da, bs[0], bs[1]);
        mma::mma_bf16(dw[2 * nb + 1], da, bs[2], bs[3]);
        mma::mma_bf16(dk[2 * nb], ea, bh[0], bh[1]);
        mma::mma_bf16(dk[2 * nb + 1], ea, bh[2], bh[3]);
      }
    }
#pragma unroll
    for (int nb = 0; nb < kHalfSteps; ++nb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) dw[2 * nb][e] = -dw[2 * nb][e], dw[2 * nb + 1][e] = -dw[2 * nb + 1][e];
      uint32_t rounded[4];
      mma::a_operand(rounded, dw[2 * nb], dw[2 * nb + 1]);
      mma::store_matrices(mma::quadrants_down(d_w + 16 * r * kRS + column0 + 16 * nb, kRS, lane), rounded);
    }
  }
  const float to_end_low = __expf(last_gate - gate_low), to_end_high = __expf(last_gate - gate_high);
#pragma unroll
  for (int n = 0; n < kTiles; ++n) {
    dq[n][0] *= gamma_low, dq[n][1] *= gamma_low, dq[n][2] *= gamma_high, dq[n][3] *= gamma_high;
    dk[n][0] *= to_end_low, dk[n][1] *= to_end_low, dk[n][2] *= to_end_high, dk[n][3] *= to_end_high;
  }
  {
    // exp(G_last) in H = exp(G_last) S + ...: dG_last += exp(G_last) sum(dH o S).
    float s = 0.0f;
    for (int e = threadIdx.x; e < kDim * kDim / 8; e += kThreads) {
      const int row = e / (kDim / 8), column = (e % (kDim / 8)) * 8;
      float x[8], y[8];
      device::load<bf16, 8>(state + row * kRS + column, x);
      device::load<bf16, 8>(d_state + row * kRS + column, y);
#pragma unroll
      for (int m = 0; m < 8; ++m) s += x[m] * y[m];
    }
    s = device::warp_sum(s);
    if (lane == 0) gate_part[kChunk - 1] += s * __expf(last_gate);
    __syncwarp();
  }
  __pipeline_wait_prior(0);
  __syncthreads();

  // 2. The decayed reads of the states: dG_i += q_i . dq_i; the keys' decay to the chunk's end:
  // dG_i -= k_i . dk_i, dG_last += the same.
  {
    float low, high;
    row_dots(dq, queries, low, high);
    add_rows(gate_part, low, high);
    row_dots(dk, keys, low, high);
    const float all = device::warp_sum(low + high);
    add_rows(gate_part, -low, -high);
    if (lane == 0) gate_part[kChunk - 1] += all;
    __syncwarp();
  }
  // T^T's row block r times `right` (rows of bfloat16 [kChunk][kRS]): T^T is zero left of its
  // diagonal blocks, and its block (r, m) is T's block (m, r) transposed on the way in.
  const auto inverse_transposed_times = [&](float(&acc)[kTiles][4], const bf16* right) {
#pragma unroll
    for (int m = 0; m < kBlocks; ++m) {
      if (m < r) continue;
      uint32_t ta[4];
      mma::load_matrices_transposed(ta, mma::quadrants_across(inverse + 16 * m * kSS + 16 * r, kSS, lane));
      add_times_rows(acc, ta, right + 16 * m * kRS);
    }
  };
  // The warp's share of P = T^T dT, its blocks left of (and on) the diagonal: first
  // dKb (diag(gamma) k)^T, then dV v^T, then the columns times beta.
  float pp[kSquareTiles][4] = {};
  const auto add_rows_times = [&](const float(&x)[kTiles][4], const bf16* right) {
#pragma unroll
    for (int kk = 0; kk < kHalfSteps; ++kk) {
      uint32_t a[4];
      mma::a_operand(a, x[2 * kk], x[2 * kk + 1]);
#pragma unroll
      for (int mb = 0; mb < kBlocks; ++mb) {
        if (mb > r) continue;
        uint32_t fb[4];
        mma::load_matrices(fb, mma::quadrants_across(right + 16 * mb * kRS + column0 + 16 * kk, kRS, lane));
        mma::mma_bf16(pp[2 * mb], a, fb[0], fb[1]);
        mma::mma_bf16(pp[2 * mb + 1], a, fb[2], fb[3]);
      }
    }
  };
  // P's column j (8 n + 2t + e % 2 of tile n) times exp(scale[j]) or scale[j].
  const auto scale_columns = [&](const float* scale, bool exponential) {
#pragma unroll
    for (int n = 0; n < kSquareTiles; ++n) {
      if (n / 2 > r) continue;
      float s0 = scale[8 * n + 2 * t], s1 = scale[8 * n + 2 * t + 1];
      if (exponential) s0 = __expf(s0), s1 = __expf(s1);
      pp[n][0] *= s0, pp[n][1] *= s1, pp[n][2] *= s0, pp[n][3] *= s1;
    }
  };
  {
    // W's part: dKb = T^T dW; dk += diag(beta gamma) dKb, dbeta_i += gamma_i dKb_i . k_i, dG_i +=
    // beta_i times that.
    float kb[kTiles][4] = {};
    inverse_transposed_times(kb, d_w);
    float low, high;
    row_dots(kb, keys, low, high);
    low *= gamma_low, high *= gamma_high;
    add_rows(beta_part, low, high);
    add_rows(gate_part, beta_low * low, beta_high * high);
    const float scale_low = beta_low * gamma_low, scale_high = beta_high * gamma_high;
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      dk[n][0] += scale_low * kb[n][0], dk[n][1] += scale_low * kb[n][1];
      dk[n][2] += scale_high * kb[n][2], dk[n][3] += scale_high * kb[n][3];
    }
    add_rows_times(kb, keys);
    scale_columns(gates, true);
  }
  {
    // U's part: dV = T^T d_delta; dv = diag(beta) dV, dbeta_i += dV_i . v_i.
    float dv[kTiles][4] = {};
    inverse_transposed_times(dv, d_delta);
    float low, high;
    row_dots(dv, values, low, high);
    add_rows(beta_part, low, high);
    V* out = static_cast<V*>(p.in.dv) + token0 * kDim + column0 + 2 * t;
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      if (row_low < span.length) {
        const float x[2] = {beta_low * dv[n][0], beta_low * dv[n][1]};
        device::store<V, 2>(out + row_low * out_row_stride + 8 * n, x);
      }
      if (row_high < span.length) {
        const float x[2] = {beta_high * dv[n][2], beta_high * dv[n][3]};
        device::store<V, 2>(out + row_high * out_row_stride + 8 * n, x);
      }
    }
    add_rows_times(dv, values);
    scale_columns(betas, false);
  }
  // The warp's share of dO delta^T (X before the gates and the mask).
  float xp[kSquareTiles][4] = {};
  lower_rows_times(xp, d_out, delta);
  {
    float4* mine = exchange + warp * 2 * kSquareTiles * 32;
#pragma unroll
    for (int n = 0; n < kSquareTiles; ++n) {
      if (n / 2 > r) continue;
      mine[n * 32 + lane] = make_float4(pp[n][0], pp[n][1], pp[n][2], pp[n][3]);
      mine[(kSquareTiles + n) * 32 + lane] = make_float4(xp[n][0], xp[n][1], xp[n][2], xp[n][3]);
    }
  }
  __syncthreads();

  // 3. The partner warp's shares (its column half of the same rows) added: P and dO delta^T.
  {
    const float4* theirs = exchange + (warp ^ kBlocks) * 2 * kSquareTiles * 32;
#pragma unroll
    for (int n = 0; n < kSquareTiles; ++n) {
      if (n / 2 > r) continue;
      const float4 x = theirs[n * 32 + lane], y = theirs[(kSquareTiles + n) * 32 + lane];
      pp[n][0] += x.x, pp[n][1] += x.y, pp[n][2] += x.z, pp[n][3] += x.w;
      xp[n][0] += y.x, xp[n][1] += y.y, xp[n][2] += y.z, xp[n][3] += y.w;
    }
  }
  // Element e of tile n: row (e < 2 ? row_low : row_high), column 8 n + 2t + e % 2.
  const auto gate_of_row = [&](int e) { return e < 2 ? gate_low : gate_high; };
  const auto row_of = [&](int e) { return e < 2 ? row_low : row_high; };
  {
    // X = dO delta^T o E o causal; X o (q k^T)'s rows add to dG_i and columns subtract from dG_j
    // (q k^T over the warp's column half: the two warps' sums add up).
    float qk[kSquareTiles][4] = {};
    lower_rows_times(qk, queries, keys);
    float low = 0.0f, high = 0.0f;
#pragma unroll
    for (int n = 0; n < kSquareTiles; ++n) {
      if (n / 2 > r) continue;
      float product[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = 8 * n + 2 * t + e % 2;
        xp[n][e] = j <= row_of(e) ? xp[n][e] * __expf(gate_of_row(e) - gates[j]) : 0.0f;
        product[e] = xp[n][e] * qk[n][e];
      }
      low += product[0] + product[1], high += product[2] + product[3];
      add_columns(gate_part, n, -(product[0] + product[2]), -(product[1] + product[3]));
    }
    add_rows(gate_part, low, high);
    round_and_times_keys(xp, x16, dq);  // dq += X k; X for X^T q
  }
  {
    // dA = -P T^T on the blocks left of (and on) the diagonal (T^T's block (m, j) is zero for
    // m > j; its B operand is T's block (j, m) as it is stored).
    uint32_t pa[kBlocks][4];
#pragma unroll
    for (int mb = 0; mb < kBlocks; ++mb)
      if (mb <= r) mma::a_operand(pa[mb], pp[2 * mb], pp[2 * mb + 1]);
    float za[kSquareTiles][4] = {};
#pragma unroll
    for (int jb = 0; jb < kBlocks; ++jb) {
      if (jb > r) continue;
#pragma unroll
      for (int mb = 0; mb < kBlocks; ++mb) {
        if (mb > jb) continue;
        uint32_t fb[4];
        mma::load_matrices(fb, mma::quadrants_across(inverse + 16 * jb * kSS + 16 * mb, kSS, lane));
        mma::mma_bf16(za[2 * jb], pa[mb], fb[0], fb[1]);
        mma::mma_bf16(za[2 * jb + 1], pa[mb], fb[2], fb[3]);
      }
    }
    // Z = dA o diag(beta) E below the diagonal; Z o k k^T's rows to dG_i and columns from dG_j,
    // dA o E o k k^T's rows to dbeta_i (k k^T over the warp's column half).
    float gram[kSquareTiles][4] = {};
    lower_rows_times(gram, keys, keys);
    float low = 0.0f, high = 0.0f, beta_sum_low = 0.0f, beta_sum_high = 0.0f;
#pragma unroll
    for (int n = 0; n < kSquareTiles; ++n) {
      if (n / 2 > r) continue;
      float product[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = 8 * n + 2 * t + e % 2;
        const float decayed = j < row_of(e) ? -za[n][e] * __expf(gate_of_row(e) - gates[j]) : 0.0f;
        const float weighted = decayed * gram[n][e];
        if (e < 2)
          beta_sum_low += weighted;
        else
          beta_sum_high += weighted;
        za[n][e] = (e < 2 ? beta_low : beta_high) * decayed;
        product[e] = za[n][e] * gram[n][e];
      }
      low += product[0] + product[1], high += product[2] + product[3];
      add_columns(gate_part, n, -(product[0] + product[2]), -(product[1] + product[3]));
    }
    add_rows(gate_part, low, high);
    add_rows(beta_part, beta_sum_low, beta_sum_high);
    round_and_times_keys(za, z16, dk);  // dk += Z k; Z for Z^T k
  }
  __syncthreads();

  // 4. dk += X^T q + Z^T k: their row block r is X's and Z's column block r (at and below the
  // diagonal), transposed on the way in.
#pragma unroll
  for (int ib = 0; ib < kBlocks; ++ib) {
    if (ib < r) continue;
    uint32_t xt[4], zt[4];
    mma::load_matrices_transposed(xt, mma::quadrants_across(x16 + 16 * ib * kSS + 16 * r, kSS, lane));
    mma::load_matrices_transposed(zt, mma::quadrants_across(z16 + 16 * ib * kSS + 16 * r, kSS, lane));
    add_times_rows(dk, xt, queries + 16 * ib * kRS);
    add_times_rows(dk, zt, keys + 16 * ib * kRS);
  }
  // dq and dk out through the warp's staging rows (over S and dH: the partial products there were
  // read before the barrier above), in whole rows of its column half.
  float* staged = reinterpret_cast<float*>(shared + L::staged) + warp * 16 * L::kStagedStride;
  const auto write_rows = [&](const float(&x)[kTiles][4], void* to) {
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      *reinterpret_cast<float2*>(staged + g * L::kStagedStride + 8 * n + 2 * t) = make_float2(x[n][0], x[n][1]);
      *reinterpret_cast<float2*>(staged + (g + 8) * L::kStagedStride + 8 * n + 2 * t) = make_float2(x[n][2], x[n][3]);
    }
    __syncwarp();
    QK* out = static_cast<QK*>(to) + token0 * kDim + 16 * r * out_row_stride + column0;
    for (int e = lane; e < 16 * L::kHalf / 4; e += 32) {
      const int row = e / (L::kHalf / 4), column = (e % (L::kHalf / 4)) * 4;
      if (16 * r + row >= span.length) continue;
      const float4 v = *reinterpret_cast<const float4*>(staged + row * L::kStagedStride + column);
      const float y[4] = {v.x, v.y, v.z, v.w};
      device::store<QK, 4>(out + row * out_row_stride + column, y);
    }
    __syncwarp();  // read out before the next rows are staged
  };
  write_rows(dq, p.in.dq);
  write_rows(dk, p.in.dk);

  if (warp == 0) {
    // dG and dbeta: the warps' parts (complete at the barrier above) in a fixed order; dg = dG
    // summed from the chunk's end: two steps per lane, then a scan over the lanes from the top.
    const int i0 = 2 * lane;
    const float* gate_parts = reinterpret_cast<const float*>(shared + L::gate_parts);
    const float* beta_parts = reinterpret_cast<const float*>(shared + L::beta_parts);
    float dgate[2] = {}, dbeta[2] = {};
#pragma unroll
    for (int w = 0; w < kWarps; ++w)
#pragma unroll
      for (int e = 0; e < 2; ++e) dgate[e] += gate_parts[w * kChunk + i0 + e], dbeta[e] += beta_parts[w * kChunk + i0 + e];
    float sum = dgate[0] + dgate[1];
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
      const float after = __shfl_down_sync(0xffffffffu, sum, offset);
      if (lane + offset < 32) sum += after;
    }
    const float at[2] = {sum, sum - dgate[0]};
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int i = i0 + e;
      if (i < span.length) {
        p.in.dg[token0 + static_cast<int64_t>(i) * in.heads] = at[e];
        p.in.dbeta[token0 + static_cast<int64_t>(i) * in.heads] = dbeta[e];
      }
    }
  }
}

}  // namespace

void launch_backward_gradients(const BackwardProblem& p, cudaStream_t stream) {
  const auto& in = p.forward.in;
  // Heads vary fastest: value heads that share a key head read its q and k close together (from L2).
  const dim3 grid(static_cast<unsigned>(in.heads), static_cast<unsigned>(in.chunks), static_cast<unsigned>(in.batch));
  const auto kernel_of = [](auto qk_tag, auto v_tag) {
    return backward_gradients_kernel<typename decltype(qk_tag)::type, typename decltype(v_tag)::type, 128>;
  };
  launch_for_dtypes(in, kernel_of, grid, kThreads, GradientLayout<128>::bytes, stream, p);
  host::check_launch("gated_delta_chunk_backward (gradients)");
}

}  // namespace strata::kernels::gdn
