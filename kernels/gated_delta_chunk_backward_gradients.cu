// The chunked gated delta rule's backward, last pass (see gated_delta_chunk_backward.cuh): every
// input gradient of one chunk from its inputs, dO, delta, d_delta (the states pass's), the state
// S entering the chunk and dH, the gradient of the state leaving it. One block of 8 warps per
// (row, head, chunk); with X = (dO delta^T) o E o causal and dA = -T^T dT T^T,
//   dT = d_delta (diag(beta) v)^T + dW (diag(beta gamma) k)^T,   dW = -d_delta S^T,
//   Z = strictly_lower(dA o diag(beta) E),
//   dq = diag(gamma) dO S^T + X k
//   dk = diag(Gamma / gamma) delta dH^T + X^T q + (Z + Z^T) k + diag(beta gamma) T^T dW
//   dv = diag(beta) T^T d_delta
//   dbeta_i = (T^T d_delta)_i . v_i + gamma_i (T^T dW)_i . k_i + sum_j dA_ij E_ij (k_i . k_j)
// and dG, the gradient of the in-chunk cumulative gates, from every place exp(G) enters (the
// rows and columns of X o (q k^T) and Z o (k k^T), q.dq's decayed part, the W and k_to_end rows,
// and exp(G_last) in H), summed from the chunk's end for dg. dq and dk build up in each warp's
// wmma accumulators (warp w owns their 16 columns from 16 w); products with a row scaling go
// through a float32 tile array in shared memory.
#include "gated_delta_chunk_backward.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBlocks = kChunk / kTile;

// Shared memory. The six chunk-row arrays stay; the `phase` region holds S and dH first, then the
// square float32 matrices and dW; dO's and delta's arrays take square bfloat16 matrices once read.
template <int kDim>
struct GradientLayout {
  static constexpr int kRowStride = bf16_stride<kDim>, kFloatStride = float_stride<kDim>;
  static constexpr int kSquareStride = float_stride<kChunk>, kSquare16Stride = bf16_stride<kChunk>;
  static constexpr int kRows = aligned_bytes(kChunk * kRowStride * 2);
  static constexpr int kSquare = aligned_bytes(kChunk * kSquareStride * 4);
  static constexpr int queries = 0, keys = kRows, values = 2 * kRows, d_out = 3 * kRows, delta = 4 * kRows,
                       d_delta = 5 * kRows;
  static constexpr int phase = 6 * kRows;
  static constexpr int state = phase;                                           // S, bfloat16 [kDim][kRowStride]
  static constexpr int d_state = phase + aligned_bytes(kDim * kRowStride * 2);  // dH, bfloat16
  static constexpr int square0 = phase, square1 = phase + kSquare;              // float32 [kChunk][kSquareStride]
  static constexpr int d_w = d_state;                                           // dW, bfloat16 (over dH)
  static constexpr int key_gram = d_w + kRows;                                  // k k^T, float32
  static constexpr int phase_end = d_state + aligned_bytes(kDim * kRowStride * 2);
  static_assert(key_gram + kSquare <= phase_end && square1 + kSquare <= d_w, "the phase region's reuse overlaps");
  static constexpr int tiles = phase_end;                                           // float32 [kChunk][kFloatStride]
  static constexpr int inverse = tiles + aligned_bytes(kChunk * kFloatStride * 4);  // T, bfloat16
  static constexpr int gates = inverse + aligned_bytes(kChunk * kSquare16Stride * 2);
  static constexpr int betas = gates + 256, d_gates = betas + 256, d_betas = d_gates + 256, extra = d_betas + 256;
  static constexpr int bytes = extra + 128;
};

// The dot of a float32 row (kDim columns) with a bfloat16 row, over one warp (lane l: columns 4 l ..).
template <int kDim>
__device__ __forceinline__ float row_dot(const float* x, const bf16* y) {
  static_assert(kDim == 128, "a warp's lanes take four columns each");
  const int column = (threadIdx.x % 32) * 4;
  float yv[4];
  device::load<bf16, 4>(y + column, yv);
  float s = 0.0f;
#pragma unroll
  for (int m = 0; m < 4; ++m) s += x[column + m] * yv[m];
  return device::warp_sum(s);
}

template <int kDim>
__device__ __forceinline__ void scale_row(float* x, float scale) {
  const int column = (threadIdx.x % 32) * 4;
#pragma unroll
  for (int m = 0; m < 4; ++m) x[column + m] *= scale;
}

template <class QK, class V, int kDim>
__global__ void __launch_bounds__(kThreads, 1) backward_gradients_kernel(BackwardProblem p) {
  using namespace nvcuda;
  using L = GradientLayout<kDim>;
  constexpr int kRS = L::kRowStride, kFS = L::kFloatStride, kSS = L::kSquareStride, kS16 = L::kSquare16Stride;
  const auto& in = p.forward.in;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const ChunkSpan span = chunk_span(in, c);
  const int64_t chunk_index = (static_cast<int64_t>(b) * in.heads + h) * in.chunks + c;
  const int64_t token0 = (static_cast<int64_t>(b) * in.seq + span.first) * in.heads + h;  // [B, T, H] index

  extern __shared__ __align__(128) unsigned char shared[];
  auto* queries = reinterpret_cast<bf16*>(shared + L::queries);
  auto* keys = reinterpret_cast<bf16*>(shared + L::keys);
  auto* values = reinterpret_cast<bf16*>(shared + L::values);
  auto* d_out = reinterpret_cast<bf16*>(shared + L::d_out);
  auto* delta = reinterpret_cast<bf16*>(shared + L::delta);
  auto* d_delta = reinterpret_cast<bf16*>(shared + L::d_delta);
  auto* state = reinterpret_cast<bf16*>(shared + L::state);
  auto* d_state = reinterpret_cast<bf16*>(shared + L::d_state);
  auto* square0 = reinterpret_cast<float*>(shared + L::square0);
  auto* square1 = reinterpret_cast<float*>(shared + L::square1);
  auto* d_w = reinterpret_cast<bf16*>(shared + L::d_w);
  auto* key_gram = reinterpret_cast<float*>(shared + L::key_gram);
  auto* tiles = reinterpret_cast<float*>(shared + L::tiles);
  auto* inverse = reinterpret_cast<bf16*>(shared + L::inverse);
  auto* gates = reinterpret_cast<float*>(shared + L::gates);
  auto* betas = reinterpret_cast<float*>(shared + L::betas);
  auto* d_gates = reinterpret_cast<float*>(shared + L::d_gates);
  auto* d_betas = reinterpret_cast<float*>(shared + L::d_betas);
  auto* extra = reinterpret_cast<float*>(shared + L::extra);  // dL/dG_last beyond the per-row terms
  // Square bfloat16 matrices, once dO and delta are read: X, then Z + Z^T; dT, then dT T^T.
  auto* square16_x = d_out;
  auto* square16_t = delta;

  // The bfloat16 arrays of the forward and of the earlier backward passes first (asynchronous),
  // then q, k and v (widened from float32 where they are).
  copy_rows<kChunk, kDim, kThreads>(p.d_out + chunk_index * kChunk * kDim, kDim, d_out, kRS);
  copy_rows<kChunk, kDim, kThreads>(p.forward.u + chunk_index * kChunk * kDim, kDim, delta, kRS);
  copy_rows<kChunk, kDim, kThreads>(p.d_delta + chunk_index * kChunk * kDim, kDim, d_delta, kRS);
  copy_rows<kDim, kDim, kThreads>(p.forward.states + chunk_index * kDim * kDim, kDim, state, kRS);
  copy_rows<kDim, kDim, kThreads>(p.d_states + chunk_index * kDim * kDim, kDim, d_state, kRS);
  copy_rows<kChunk, kChunk, kThreads>(p.forward.inverse + chunk_index * kChunk * kChunk, kChunk, inverse, kS16);
  {
    const auto row_pointer = [&](const void* t, const launch::RowStrides& s, auto tag) {
      using T = decltype(tag);
      return static_cast<const T*>(t) + b * s.batch + static_cast<int64_t>(span.first) * s.seq + h * s.head;
    };
    stage_rows<QK, kDim, kThreads>(row_pointer(in.q, in.q_strides, QK{}), in.q_strides.seq, span.length, queries);
    stage_rows<QK, kDim, kThreads>(row_pointer(in.k, in.k_strides, QK{}), in.k_strides.seq, span.length, keys);
    stage_rows<V, kDim, kThreads>(row_pointer(in.v, in.v_strides, V{}), in.v_strides.seq, span.length, values);
  }
  if (threadIdx.x < kChunk) {
    const int i = threadIdx.x;
    gates[i] = p.forward.gates[chunk_index * kChunk + i];
    betas[i] = i < span.length ? in.beta[token0 + static_cast<int64_t>(i) * in.heads] : 0.0f;
    d_gates[i] = 0.0f;
    d_betas[i] = 0.0f;
  }
  if (threadIdx.x == 0) *extra = 0.0f;
  staged_rows_wait();
  __syncthreads();
  const float last_gate = gates[kChunk - 1];

  // Warp w's columns of dq and dk: row tiles 0..3, column tile w.
  static_assert(kDim / kTile == kWarps, "one column tile of dq and dk per warp");
  Accumulator dq[kBlocks], dk[kBlocks];
  const auto load_tiles = [&](Accumulator(&to)[kBlocks]) {
#pragma unroll
    for (int ti = 0; ti < kBlocks; ++ti)
      wmma::load_matrix_sync(to[ti], tiles + ti * kTile * kFS + warp * kTile, kFS, wmma::mem_row_major);
  };

  // k_to_end's part: tiles = diag(Gamma / gamma) delta dH^T, with G_i's and G_last's terms.
  product<false, true, kWarps>(tiles, kFS, delta, kRS, d_state, kRS, kChunk, kDim, kDim);
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
    if (lane == 0) atomicAdd(extra, s * __expf(last_gate));
  }
  __syncthreads();
  for (int i = warp; i < kChunk; i += kWarps) {
    float* row = tiles + i * kFS;
    scale_row<kDim>(row, __expf(last_gate - gates[i]));
    __syncwarp();
    const float dot = row_dot<kDim>(row, keys + i * kRS);
    if (lane == 0) d_gates[i] -= dot, atomicAdd(extra, dot);
  }
  __syncthreads();
  load_tiles(dk);
  __syncthreads();

  // The read of the entering state: tiles = diag(gamma) dO S^T; dG_i += q_i . tiles_i.
  product<false, true, kWarps>(tiles, kFS, d_out, kRS, state, kRS, kChunk, kDim, kDim);
  __syncthreads();
  for (int i = warp; i < kChunk; i += kWarps) {
    float* row = tiles + i * kFS;
    scale_row<kDim>(row, __expf(gates[i]));
    __syncwarp();
    const float dot = row_dot<kDim>(row, queries + i * kRS);
    if (lane == 0) d_gates[i] += dot;
  }
  __syncthreads();
  load_tiles(dq);
  __syncthreads();

  // dW = -d_delta S^T, in bfloat16 over dH (read for the last time above).
  product<false, true, kWarps>(tiles, kFS, d_delta, kRS, state, kRS, kChunk, kDim, kDim);
  __syncthreads();
  for (int e = threadIdx.x; e < kChunk * kDim / 8; e += kThreads) {
    const int row = e / (kDim / 8), column = (e % (kDim / 8)) * 8;
    float x[8];
#pragma unroll
    for (int m = 0; m < 8; ++m) x[m] = -tiles[row * kFS + column + m];
    device::store<bf16, 8>(d_w + row * kRS + column, x);
  }
  __syncthreads();

  // The chunk's square products: q k^T (square0, over S), dO delta^T (square1), k k^T.
  // Only their lower triangles are read: the upper tiles stay unwritten.
  product<false, true, kWarps>(square0, kSS, queries, kRS, keys, kRS, kChunk, kChunk, kDim, Structure::lower_output);
  product<false, true, kWarps>(square1, kSS, d_out, kRS, delta, kRS, kChunk, kChunk, kDim, Structure::lower_output);
  product<false, true, kWarps>(key_gram, kSS, keys, kRS, keys, kRS, kChunk, kChunk, kDim, Structure::lower_output);
  __syncthreads();
  // X = dP o E o causal (bfloat16, over dO); square1 <- X o (q k^T), whose rows add to dG_i and
  // columns subtract from dG_j.
  for (int e = threadIdx.x; e < kChunk * kChunk; e += kThreads) {
    const int i = e / kChunk, j = e % kChunk;
    const float x = j <= i ? square1[i * kSS + j] * __expf(gates[i] - gates[j]) : 0.0f;
    square16_x[i * kS16 + j] = __float2bfloat16_rn(x);
    square1[i * kSS + j] = j <= i ? x * square0[i * kSS + j] : 0.0f;
  }
  __syncthreads();
  for (int i = warp; i < kChunk; i += kWarps) {  // row i by a warp, its lanes over j
    float s = 0.0f;
    for (int j = lane; j < kChunk; j += 32) s += square1[i * kSS + j] - square1[j * kSS + i];
    s = device::warp_sum(s);
    if (lane == 0) d_gates[i] += s;
  }
#pragma unroll
  for (int ti = 0; ti < kBlocks; ++ti) {
    mma_tile<false, false>(dq[ti], square16_x, kS16, keys, kRS, ti, warp, 0, ti + 1);
    mma_tile<true, false>(dk[ti], square16_x, kS16, queries, kRS, ti, warp, ti, kBlocks);
  }
  // dT's two products: d_delta v^T (square0), dW k^T (square1); the beta and gamma column scalings below.
  __syncthreads();
  product<false, true, kWarps>(square0, kSS, d_delta, kRS, values, kRS, kChunk, kChunk, kDim);
  product<false, true, kWarps>(square1, kSS, d_w, kRS, keys, kRS, kChunk, kChunk, kDim);
  __syncthreads();
  for (int e = threadIdx.x; e < kChunk * kChunk; e += kThreads) {
    const int i = e / kChunk, j = e % kChunk;
    const float dt = betas[j] * (square0[i * kSS + j] + __expf(gates[j]) * square1[i * kSS + j]);
    square16_t[i * kS16 + j] = __float2bfloat16_rn(dt);
  }
  __syncthreads();
  // dA = -T^T (dT T^T): dT T^T into square0, in bfloat16 over dT, then -dA into square1.
  product<false, true, kWarps>(square0, kSS, square16_t, kS16, inverse, kS16, kChunk, kChunk, kChunk,
                               Structure::upper_b);
  __syncthreads();
  for (int e = threadIdx.x; e < kChunk * kChunk; e += kThreads) {
    const int i = e / kChunk, j = e % kChunk;
    square16_t[i * kS16 + j] = __float2bfloat16_rn(square0[i * kSS + j]);
  }
  __syncthreads();
  product<true, false, kWarps>(square1, kSS, inverse, kS16, square16_t, kS16, kChunk, kChunk, kChunk,
                               Structure::upper_a);
  __syncthreads();
  // Z = dA o diag(beta) E below the diagonal, Z + Z^T in bfloat16 (over X); square1 <- Z o k k^T
  // (rows to dG_i, columns from dG_j), square0 <- dA o E o k k^T (rows to dbeta_i).
  for (int e = threadIdx.x; e < kChunk * kChunk; e += kThreads) {
    const int i = e / kChunk, j = e % kChunk;
    if (j < i) {
      const float decayed = -square1[i * kSS + j] * __expf(gates[i] - gates[j]);
      const float z = betas[i] * decayed, gram = key_gram[i * kSS + j];
      square16_x[i * kS16 + j] = square16_x[j * kS16 + i] = __float2bfloat16_rn(z);
      square1[i * kSS + j] = z * gram;
      square0[i * kSS + j] = decayed * gram;
    } else {
      square1[i * kSS + j] = square0[i * kSS + j] = 0.0f;
      if (j == i) square16_x[i * kS16 + i] = __float2bfloat16_rn(0.0f);
    }
  }
  __syncthreads();
  for (int i = warp; i < kChunk; i += kWarps) {
    float s = 0.0f, t = 0.0f;
    for (int j = lane; j < kChunk; j += 32) s += square1[i * kSS + j] - square1[j * kSS + i], t += square0[i * kSS + j];
    s = device::warp_sum(s);
    t = device::warp_sum(t);
    if (lane == 0) d_gates[i] += s, d_betas[i] += t;
  }
#pragma unroll
  for (int ti = 0; ti < kBlocks; ++ti)
    mma_tile<false, false>(dk[ti], square16_x, kS16, keys, kRS, ti, warp, 0, kBlocks);

  // dv = diag(beta) T^T d_delta, with dbeta_i += (T^T d_delta)_i . v_i.
  product<true, false, kWarps>(tiles, kFS, inverse, kS16, d_delta, kRS, kChunk, kDim, kChunk, Structure::upper_a);
  __syncthreads();
  V* dv = static_cast<V*>(p.in.dv) + token0 * kDim;
  for (int i = warp; i < kChunk; i += kWarps) {
    const float* row = tiles + i * kFS;
    const float dot = row_dot<kDim>(row, values + i * kRS);
    if (lane == 0) d_betas[i] += dot;
    if (i < span.length) {
      float x[4];
#pragma unroll
      for (int m = 0; m < 4; ++m) x[m] = betas[i] * row[lane * 4 + m];
      device::store<V, 4>(dv + static_cast<int64_t>(i) * in.heads * kDim + lane * 4, x);
    }
  }
  __syncthreads();

  // W's part: dKb = T^T dW; dk += diag(beta gamma) dKb, dbeta_i += gamma_i dKb_i . k_i, dG_i += beta_i that.
  product<true, false, kWarps>(tiles, kFS, inverse, kS16, d_w, kRS, kChunk, kDim, kChunk, Structure::upper_a);
  __syncthreads();
  for (int i = warp; i < kChunk; i += kWarps) {
    float* row = tiles + i * kFS;
    const float gamma = __expf(gates[i]);
    const float dot = gamma * row_dot<kDim>(row, keys + i * kRS);
    if (lane == 0) d_betas[i] += dot, d_gates[i] += betas[i] * dot;
    scale_row<kDim>(row, betas[i] * gamma);
  }
  __syncthreads();
#pragma unroll
  for (int ti = 0; ti < kBlocks; ++ti) {
    Accumulator part;
    wmma::load_matrix_sync(part, tiles + ti * kTile * kFS + warp * kTile, kFS, wmma::mem_row_major);
#pragma unroll
    for (int e = 0; e < part.num_elements; ++e) dk[ti].x[e] += part.x[e];
  }
  __syncthreads();

  // dq and dk out through `tiles`; dg = dG summed from the chunk's end, and dbeta.
  const auto write_out = [&](Accumulator(&from)[kBlocks], void* to) {
#pragma unroll
    for (int ti = 0; ti < kBlocks; ++ti)
      wmma::store_matrix_sync(tiles + ti * kTile * kFS + warp * kTile, from[ti], kFS, wmma::mem_row_major);
    __syncthreads();
    QK* out = static_cast<QK*>(to) + token0 * kDim;
    for (int e = threadIdx.x; e < span.length * kDim / 8; e += kThreads) {
      const int i = e / (kDim / 8), column = (e % (kDim / 8)) * 8;
      float x[8];
#pragma unroll
      for (int m = 0; m < 8; ++m) x[m] = tiles[i * kFS + column + m];
      if constexpr (sizeof(QK) == 4) {
        float low[4], high[4];
#pragma unroll
        for (int m = 0; m < 4; ++m) low[m] = x[m], high[m] = x[4 + m];
        device::store<QK, 4>(out + static_cast<int64_t>(i) * in.heads * kDim + column, low);
        device::store<QK, 4>(out + static_cast<int64_t>(i) * in.heads * kDim + column + 4, high);
      } else {
        device::store<QK, 8>(out + static_cast<int64_t>(i) * in.heads * kDim + column, x);
      }
    }
    __syncthreads();
  };
  write_out(dq, p.in.dq);
  write_out(dk, p.in.dk);
  if (warp == 0) {
    // Suffix sums over the chunk: two steps per lane, then a scan over the lanes from the top.
    const int i0 = 2 * lane;
    const float g0 = d_gates[i0], g1 = d_gates[i0 + 1] + (i0 + 1 == kChunk - 1 ? *extra : 0.0f);
    float sum = g0 + g1;
#pragma unroll
    for (int offset = 1; offset < 32; offset *= 2) {
      const float after = __shfl_down_sync(0xffffffffu, sum, offset);
      if (lane + offset < 32) sum += after;
    }
    const float at[2] = {sum, sum - g0};
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int i = i0 + e;
      if (i < span.length) {
        p.in.dg[token0 + static_cast<int64_t>(i) * in.heads] = at[e];
        p.in.dbeta[token0 + static_cast<int64_t>(i) * in.heads] = d_betas[i];
      }
    }
  }
}

}  // namespace

void launch_backward_gradients(const BackwardProblem& p, cudaStream_t stream) {
  const auto& in = p.forward.in;
  const dim3 grid(static_cast<unsigned>(in.chunks), static_cast<unsigned>(in.heads), static_cast<unsigned>(in.batch));
  const auto kernel_of = [](auto qk_tag, auto v_tag) {
    return backward_gradients_kernel<typename decltype(qk_tag)::type, typename decltype(v_tag)::type, 128>;
  };
  launch_for_dtypes(in, kernel_of, grid, kThreads, GradientLayout<128>::bytes, stream, p);
  host::check_launch("gated_delta_chunk_backward (gradients)");
}

}  // namespace strata::kernels::gdn
