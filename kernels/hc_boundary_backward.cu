// mHC's half boundary backward over the streams in one kernel for bfloat16 streams
// (strata::kernels::hc_boundary): the projection's product term a fn made on tensor cores inside
// the kernel, where the general path (kernels/hc_boundary.cu) has cuBLAS write it out as
// [tokens, n hidden] and reads it back (8 stream-widths of traffic of the pass's 23).
//
// For 16 tokens a block, walking `hidden` in steps of kColumns columns of every stream:
//   1. each thread issues the loads of its unit (one token, kVector columns of every stream) of
//      the incoming gradients, the new and old streams and the branch, so that they are in flight
//      while the block makes the step's product;
//   2. the step's columns of fn land in shared memory, and the warps multiply the block's a
//      [16 tokens][maps] (A, in registers for the whole kernel) by them (B) on mma.sync (bfloat16
//      operands, float32 sums) into a product tile in shared memory;
//   3. each unit sums the gradient reaching each new stream,
//        G_k = grad_new_k + pre_k grad_input + (a fn)_k - c new_streams_k,
//      and runs the combine's backward as boundary_backward_kernel does: grad_streams_j =
//      sum_k res_jk G_k, grad_branch = sum_k post_k G_k, and its shares of the per-token sums
//      <G_k, branch> and <streams_j, G_k>, which end in a fixed-order reduction over the token's
//      units (neighbouring lanes of one warp), so the same inputs give the same bits.
#include <algorithm>
#include <utility>

#include "common.cuh"
#include "mma_fragments.cuh"
#include "strata/kernels/hc_boundary_launch.h"

namespace strata::kernels {

namespace {

using namespace device;
using bf16 = __nv_bfloat16;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRows = 16;   // tokens a block: the rows of the mma tiles
constexpr int kVector = 4;  // hidden columns a unit moves at a time (8-byte accesses)
using Raw = Pack<bf16, kVector>;

template <int N>
struct BackwardShape {
  static constexpr int kMaps = 2 * N + N * N;             // a's columns and fn's rows
  static constexpr int kDepth = (kMaps + 15) / 16 * 16;   // the product's k, padded with zeros
  static constexpr int kMapSteps = kDepth / 16;
  static constexpr int kColumns = N <= 4 ? 64 : 32;       // hidden columns a step, of every stream
  static constexpr int kWidth = N * kColumns;             // the step's product columns: stream k's at k kColumns
  static constexpr int kPairs = kWidth / 16;              // pairs of 8-column mma tiles
  static constexpr int kPairsPerWarp = (kPairs + kWarps - 1) / kWarps;
  static constexpr int kUnitsPerRow = kColumns / kVector;  // threads that take one token's step
  static_assert(kRows * kUnitsPerRow <= kThreads && kUnitsPerRow <= 32, "one unit a thread, a token's in one warp");
  static constexpr int kPieces = kColumns / 8;            // 16-byte pieces of fn a row, a stream and a step
  static constexpr int kAStride = kDepth + 8;             // bf16 row strides: ldmatrix rows in distinct banks
  static constexpr int kWeightStride = kWidth + 8;
  static constexpr int kProductStride = kWidth + 8;       // floats: the C fragments' pairs in distinct banks
  static constexpr int kValues = N + 1 + N + N * N;       // a token's pre, c, post and res

  static constexpr int a = 0;
  static constexpr int weights = a + kRows * kAStride * 2;
  static constexpr int product = weights + kDepth * kWeightStride * 2;
  static constexpr int values = product + kRows * kProductStride * 4;
  static constexpr int bytes = values + kRows * kValues * 4;
};

template <int N>
__global__ void __launch_bounds__(kThreads, N <= 4 ? 2 : 1)
    boundary_backward_fused_kernel(const bf16* __restrict__ grad_new, const bf16* __restrict__ grad_input,
                                   const bf16* __restrict__ a, const bf16* __restrict__ fn,
                                   const float* __restrict__ pre, const float* __restrict__ rms,
                                   const bf16* __restrict__ new_streams, const bf16* __restrict__ streams,
                                   const bf16* __restrict__ branch, const float* __restrict__ post,
                                   const float* __restrict__ res, bf16* __restrict__ grad_streams,
                                   bf16* __restrict__ grad_branch, float* __restrict__ grad_post,
                                   float* __restrict__ grad_res, int64_t tokens, int64_t hidden) {
  using S = BackwardShape<N>;
  extern __shared__ __align__(16) unsigned char shared[];
  auto* a_tile = reinterpret_cast<bf16*>(shared + S::a);
  auto* weights = reinterpret_cast<bf16*>(shared + S::weights);
  auto* product = reinterpret_cast<float*>(shared + S::product);
  auto* values = reinterpret_cast<float*>(shared + S::values);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kRows;
  const int rows = static_cast<int>(tokens - first < kRows ? tokens - first : kRows);

  // The block's a (zero past its tokens and its maps), its per-token values, and fn's zero rows.
  for (int i = threadIdx.x; i < kRows * S::kDepth; i += kThreads) {
    const int r = i / S::kDepth, m = i % S::kDepth;
    a_tile[r * S::kAStride + m] = r < rows && m < S::kMaps ? a[(first + r) * S::kMaps + m] : __float2bfloat16_rn(0.0f);
  }
  for (int i = threadIdx.x; i < kRows * S::kValues; i += kThreads) {
    const int r = i / S::kValues, e = i % S::kValues;
    const int64_t t = first + r;
    values[i] = r >= rows          ? 0.0f
                : e < N            ? pre[t * N + e]
                : e == N           ? rms[t]
                : e < 2 * N + 1    ? post[t * N + e - N - 1]
                                   : res[t * N * N + e - 2 * N - 1];
  }
  for (int i = threadIdx.x; i < (S::kDepth - S::kMaps) * S::kWidth; i += kThreads)
    weights[(S::kMaps + i / S::kWidth) * S::kWeightStride + i % S::kWidth] = __float2bfloat16_rn(0.0f);
  __syncthreads();
  uint32_t a_frags[S::kMapSteps][4];
#pragma unroll
  for (int kk = 0; kk < S::kMapSteps; ++kk)
    mma::load_matrices(a_frags[kk], mma::quadrants_down(a_tile + 16 * kk, S::kAStride, lane));

  // This thread's unit: token row `row`, columns `column` .. + kVector - 1 of each step.
  const bool works = threadIdx.x < kRows * S::kUnitsPerRow;
  const int row = threadIdx.x / S::kUnitsPerRow, column = threadIdx.x % S::kUnitsPerRow * kVector;
  const bool live = works && row < rows;
  const int64_t t = first + row;
  const float* mine = values + row * S::kValues;  // pre, c, post, res
  float sums[N * N + N] = {};                     // d res (j N + k), then d post (N N + k)
  const int g = lane / 4, t4 = lane % 4;

  for (int64_t h0 = 0; h0 < hidden; h0 += S::kColumns) {
    // 1. The unit's operands, in flight during 2.
    Raw gi{}, b{}, x[N], gn[N], v[N];
    if (live) {
      const int64_t h = h0 + column;
      if (grad_input != nullptr) gi = *reinterpret_cast<const Raw*>(grad_input + t * hidden + h);
      b = *reinterpret_cast<const Raw*>(branch + t * hidden + h);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const int64_t at = (t * N + k) * hidden + h;
        x[k] = *reinterpret_cast<const Raw*>(new_streams + at);
        gn[k] = grad_new != nullptr ? *reinterpret_cast<const Raw*>(grad_new + at) : Raw{};
        v[k] = *reinterpret_cast<const Raw*>(streams + at);
      }
    }

    // 2. fn's columns of the step, then the product a fn into the product tile.
    for (int i = threadIdx.x; i < S::kMaps * N * S::kPieces; i += kThreads) {
      const int m = i / (N * S::kPieces), j = i / S::kPieces % N, piece = i % S::kPieces;
      *reinterpret_cast<uint4*>(weights + m * S::kWeightStride + j * S::kColumns + 8 * piece) =
          *reinterpret_cast<const uint4*>(fn + (static_cast<int64_t>(m) * N + j) * hidden + h0 + 8 * piece);
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < S::kPairsPerWarp; ++p) {
      const int pair = warp + p * kWarps;
      if (pair < S::kPairs) {
        float c[2][4] = {};
#pragma unroll
        for (int kk = 0; kk < S::kMapSteps; ++kk) {
          uint32_t w[4];
          mma::load_matrices_transposed(
              w, mma::quadrants_down(weights + 16 * kk * S::kWeightStride + 16 * pair, S::kWeightStride, lane));
          mma::mma_bf16(c[0], a_frags[kk], w[0], w[1]);
          mma::mma_bf16(c[1], a_frags[kk], w[2], w[3]);
        }
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          float* out = product + g * S::kProductStride + 16 * pair + 8 * half + 2 * t4;
          *reinterpret_cast<float2*>(out) = make_float2(c[half][0], c[half][1]);
          *reinterpret_cast<float2*>(out + 8 * S::kProductStride) = make_float2(c[half][2], c[half][3]);
        }
      }
    }
    __syncthreads();

    // 3. The unit's gradients.
    if (live) {
      const int64_t h = h0 + column;
      const float c = mine[N];
      float gk[N][kVector];
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const float4 pk = *reinterpret_cast<const float4*>(product + row * S::kProductStride + k * S::kColumns + column);
        const float ak[kVector] = {pk.x, pk.y, pk.z, pk.w};
#pragma unroll
        for (int e = 0; e < kVector; ++e)
          gk[k][e] = ak[e] - c * to_float(x[k].v[e]) + mine[k] * to_float(gi.v[e]) + to_float(gn[k].v[e]);
      }
      float db[kVector];
#pragma unroll
      for (int e = 0; e < kVector; ++e) {
        db[e] = 0.0f;
#pragma unroll
        for (int k = 0; k < N; ++k) {
          db[e] += mine[N + 1 + k] * gk[k][e];
          sums[N * N + k] += gk[k][e] * to_float(b.v[e]);
        }
      }
      store<bf16, kVector>(grad_branch + t * hidden + h, db);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        float ds[kVector];
#pragma unroll
        for (int e = 0; e < kVector; ++e) {
          ds[e] = 0.0f;
#pragma unroll
          for (int k = 0; k < N; ++k) {
            ds[e] += mine[2 * N + 1 + j * N + k] * gk[k][e];
            sums[j * N + k] += to_float(v[j].v[e]) * gk[k][e];
          }
        }
        store<bf16, kVector>(grad_streams + (t * N + j) * hidden + h, ds);
      }
    }
    __syncthreads();  // fn's columns and the product tile are free for the next step
  }

  // The per-token sums over the token's units, in a fixed order.
#pragma unroll
  for (int i = 0; i < N * N + N; ++i)
#pragma unroll
    for (int offset = 1; offset < S::kUnitsPerRow; offset *= 2) sums[i] += __shfl_xor_sync(0xffffffffu, sums[i], offset);
  if (live && threadIdx.x % S::kUnitsPerRow == 0) {
#pragma unroll
    for (int i = 0; i < N * N; ++i) grad_res[t * N * N + i] = sums[i];
#pragma unroll
    for (int k = 0; k < N; ++k) grad_post[t * N + k] = sums[N * N + k];
  }
}

}  // namespace

namespace launch {

void hc_boundary_backward_fused(const void* grad_new, const void* grad_input, const void* a, const void* fn,
                                const float* pre, const float* rms, const void* new_streams, const void* streams,
                                const void* branch, const float* post, const float* res, void* grad_streams,
                                void* grad_branch, float* grad_post, float* grad_res, int64_t tokens, int64_t n,
                                int64_t hidden, Stream stream) {
  const char* what = "hc_boundary_backward_fused";
  if (!hc_boundary_fused_fits(n, hidden))
    fail(what, ": n ", n, " and hidden ", hidden, "; expected n in 1..", kMaxHyperStreams,
         " and hidden a multiple of ", n <= 4 ? 64 : 32);
  const std::pair<const char*, const void*> arrays[] = {
      {"grad_new", grad_new},       {"grad_input", grad_input},     {"fn", fn},
      {"new_streams", new_streams}, {"streams", streams},           {"branch", branch},
      {"grad_streams", grad_streams}, {"grad_branch", grad_branch}};
  for (const auto& [name, p] : arrays)
    if (p != nullptr && !host::aligned(p, 16))
      fail(what, ": ", name, " at ", p, " is not 16-byte aligned; every bfloat16 array but a must be");
  if (tokens == 0) return;
  const int64_t blocks = (tokens + kRows - 1) / kRows;
  if (blocks > 0x7fffffff) fail(what, ": ", tokens, " tokens, more than one launch takes");
  host::dispatch_streams(n, what, [&](auto size) {
    constexpr int N = decltype(size)::value;
    constexpr int bytes = BackwardShape<N>::bytes;
    cudaFuncSetAttribute(boundary_backward_fused_kernel<N>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    boundary_backward_fused_kernel<N><<<static_cast<unsigned>(blocks), kThreads, bytes, host::as_cuda(stream)>>>(
        static_cast<const bf16*>(grad_new), static_cast<const bf16*>(grad_input), static_cast<const bf16*>(a),
        static_cast<const bf16*>(fn), pre, rms, static_cast<const bf16*>(new_streams),
        static_cast<const bf16*>(streams), static_cast<const bf16*>(branch), post, res,
        static_cast<bf16*>(grad_streams), static_cast<bf16*>(grad_branch), grad_post, grad_res, tokens, hidden);
  });
  host::check_launch(what);
}

}  // namespace launch

}  // namespace strata::kernels
