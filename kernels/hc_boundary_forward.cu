// mHC's half boundary forward in one kernel for bfloat16 streams (strata::kernels::hc_boundary):
// half i's combine, half i+1's projection product on tensor cores, its RMS factor, the pre map
// and the collapse, for 16 tokens a block. Where the three-kernel path (kernels/hc_boundary.cu and
// cuBLAS between them) reads the new streams twice more after writing them, from memory, this one
// keeps the product in registers and reads the block's own new streams back once, for the
// collapse, right after writing them (from L2).
//
// The block walks `hidden` in steps of kColumns columns. Each step:
//   1. a thread combines one token's kVector columns of every stream (hc_combine's order and
//      roundings, as boundary_combine_kernel), writes them out and stages them in shared memory as
//      the step's A tile [16 tokens][n kColumns]; the step's columns of fn land beside it as B;
//   2. the warps take the tile's k-steps in turns, each adding A B^T into its own accumulators
//      (mma.sync, bfloat16 operands, float32 sums) for all of fn's rows.
// Then the warps' accumulators meet in shared memory in a fixed order (the same bits for the same
// inputs, so a recompute matches), f = product * rstd, pre_k = sigmoid(scale[0] f_k + base_k) +
// eps, and the collapse sum_j pre_j new_streams_j in hc_collapse's order.
#include <algorithm>
#include <utility>

#include "common.cuh"
#include "hc_combine.cuh"
#include "hc_gates.cuh"
#include "mma_fragments.cuh"
#include "strata/kernels/hc_boundary_launch.h"

namespace strata::kernels {

namespace {

using namespace device;
using bf16 = __nv_bfloat16;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRows = 16;    // tokens a block: the rows of the mma tiles
constexpr int kVector = 8;   // hidden columns a thread combines at a time (16-byte accesses)
constexpr int kCollapseVector = 8;

template <int N>
struct ForwardShape {
  static constexpr int kMaps = 2 * N + N * N;              // fn's rows: pre, post and res logits
  static constexpr int kMapRows = (kMaps + 15) / 16 * 16;  // padded with zero rows to whole B blocks
  static constexpr int kColumns = N <= 4 ? 128 : 64;       // hidden columns a step (every stream's)
  static constexpr int kDepth = N * kColumns;              // the step's k: stream j's columns at j kColumns
  static constexpr int kSteps = kDepth / 16;               // its mma k-steps
  static constexpr int kStride = kDepth + 8;               // bf16 row stride: ldmatrix rows in distinct banks
  static constexpr int kUnitsPerRow = kColumns / kVector;  // threads that combine one token's step
  static_assert(kRows * kUnitsPerRow <= kThreads, "one combine unit a thread");
  static constexpr int kPieces = kColumns / 8;             // 16-byte pieces of fn a row, a stream and a step

  // Shared memory: during the steps the A tile and fn's columns; after them, the warps' partial
  // products [kWarps][kRows][kMapRows] over both. Then post and res [kRows][N + N N], rstd
  // [kRows] and pre [kRows][N].
  static constexpr int tile = 0;
  static constexpr int weights = tile + kRows * kStride * 2;
  static constexpr int partials = 0;
  static constexpr int kPartialBytes = kWarps * kRows * kMapRows * 4;
  static constexpr int maps = std::max(weights + kMapRows * kStride * 2, kPartialBytes);
  static constexpr int rstd = maps + kRows * (N + N * N) * 4;
  static constexpr int pre = rstd + kRows * 4;
  static constexpr int bytes = pre + kRows * N * 4;
};

// new_streams is read back after this block wrote it, so it is no __restrict__ (a read-only load
// path is not coherent with the kernel's own writes). Three blocks an SM for n <= 4 (80 registers)
// keep more loads in flight than two; docs/performance.md (twelfth session) has the timings.
template <int N>
__global__ void __launch_bounds__(kThreads, N <= 4 ? 3 : 1)
    boundary_forward_kernel(const bf16* __restrict__ streams, const bf16* __restrict__ branch,
                            const float* __restrict__ post, const float* __restrict__ res,
                            const bf16* __restrict__ fn, const float* __restrict__ base,
                            const float* __restrict__ scale, float norm_eps, float eps, bf16* new_streams,
                            bf16* __restrict__ next_input, float* __restrict__ f, float* __restrict__ rstd,
                            int64_t tokens, int64_t hidden) {
  using S = ForwardShape<N>;
  extern __shared__ __align__(16) unsigned char shared[];
  auto* tile = reinterpret_cast<bf16*>(shared + S::tile);
  auto* weights = reinterpret_cast<bf16*>(shared + S::weights);
  auto* partials = reinterpret_cast<float*>(shared + S::partials);
  auto* maps = reinterpret_cast<float*>(shared + S::maps);
  auto* rstd_of = reinterpret_cast<float*>(shared + S::rstd);
  auto* pre_of = reinterpret_cast<float*>(shared + S::pre);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kRows;
  const int rows = static_cast<int>(tokens - first < kRows ? tokens - first : kRows);

  for (int i = threadIdx.x; i < kRows * (N + N * N); i += kThreads) {
    const int r = i / (N + N * N), e = i % (N + N * N);
    maps[i] = r >= rows ? 0.0f : e < N ? post[(first + r) * N + e] : res[(first + r) * N * N + e - N];
  }
  for (int i = threadIdx.x; i < (S::kMapRows - S::kMaps) * S::kDepth; i += kThreads)
    weights[(S::kMaps + i / S::kDepth) * S::kStride + i % S::kDepth] = __float2bfloat16_rn(0.0f);

  // This thread's combine unit: token row `row`, columns `column` .. + kVector - 1 of each step.
  const bool combines = threadIdx.x < kRows * S::kUnitsPerRow;
  const int row = threadIdx.x / S::kUnitsPerRow, column = threadIdx.x % S::kUnitsPerRow * kVector;
  const bool live = combines && row < rows;
  float squares = 0.0f;  // of the stored new streams, this unit's share of its token
  float product[S::kMapRows / 8][4] = {};  // C tiles: tokens g, g + 8 by fn rows 8 j + 2 t, + 1
  __syncthreads();  // maps in place

  for (int64_t h0 = 0; h0 < hidden; h0 += S::kColumns) {
    if (combines) {
      float out[N][kVector] = {};
      if (live) {
        const int64_t t = first + row;
        const float* p = maps + row * (N + N * N);
        const float* r = p + N;
        float b[kVector], v[N][kVector];
        load<bf16, kVector>(branch + t * hidden + h0 + column, b);
#pragma unroll
        for (int j = 0; j < N; ++j) load<bf16, kVector>(streams + (t * N + j) * hidden + h0 + column, v[j]);
#pragma unroll
        for (int k = 0; k < N; ++k) {
#pragma unroll
          for (int e = 0; e < kVector; ++e) {
            out[k][e] = round_to<bf16>(hc_combine::combined<N>(p, r, b[e], [&](int j) { return v[j][e]; }, k));
            squares += out[k][e] * out[k][e];
          }
          store<bf16, kVector>(new_streams + (t * N + k) * hidden + h0 + column, out[k]);
        }
      }
#pragma unroll
      for (int k = 0; k < N; ++k) store<bf16, kVector>(tile + row * S::kStride + k * S::kColumns + column, out[k]);
    }
    for (int i = threadIdx.x; i < S::kMaps * N * S::kPieces; i += kThreads) {
      const int m = i / (N * S::kPieces), j = i / S::kPieces % N, piece = i % S::kPieces;
      *reinterpret_cast<uint4*>(weights + m * S::kStride + j * S::kColumns + 8 * piece) =
          *reinterpret_cast<const uint4*>(fn + (static_cast<int64_t>(m) * N + j) * hidden + h0 + 8 * piece);
    }
    __syncthreads();
    for (int step = warp; step < S::kSteps; step += kWarps) {
      uint32_t a[4];
      mma::load_matrices(a, mma::quadrants_down(tile + 16 * step, S::kStride, lane));
#pragma unroll
      for (int block = 0; block < S::kMapRows / 16; ++block) {
        uint32_t b[4];
        mma::load_matrices(b, mma::quadrants_across(weights + 16 * block * S::kStride + 16 * step, S::kStride, lane));
        mma::mma_bf16(product[2 * block], a, b[0], b[1]);
        mma::mma_bf16(product[2 * block + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // the tile and fn's columns are free for the next step
  }

  // The warps' products meet in a fixed order; the RMS factor from the units' squares (the units
  // of a token are kUnitsPerRow neighbouring lanes of one warp).
  const int g = lane / 4, t4 = lane % 4;
#pragma unroll
  for (int j = 0; j < S::kMapRows / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      partials[(warp * kRows + g + 8 * (e / 2)) * S::kMapRows + 8 * j + 2 * t4 + e % 2] = product[j][e];
#pragma unroll
  for (int offset = 1; offset < S::kUnitsPerRow; offset *= 2) squares += __shfl_xor_sync(0xffffffffu, squares, offset);
  if (combines && threadIdx.x % S::kUnitsPerRow == 0)
    rstd_of[row] = rsqrtf(squares / static_cast<float>(N * hidden) + norm_eps);
  __syncthreads();
  for (int i = threadIdx.x; i < rows * S::kMaps; i += kThreads) {
    const int r = i / S::kMaps, m = i % S::kMaps;
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partials[(w * kRows + r) * S::kMapRows + m];
    const float x = __fmul_rn(sum, rstd_of[r]);
    f[(first + r) * S::kMaps + m] = x;
    if (m < N) pre_of[r * N + m] = __fadd_rn(hc_gates::sigmoid(hc_gates::logit(x, scale[0], base[m])), eps);
  }
  if (threadIdx.x < rows) rstd[first + threadIdx.x] = rstd_of[threadIdx.x];
  __syncthreads();  // pre in place; the block's new streams written and visible to it

  const int64_t pieces = hidden / kCollapseVector;
  for (int64_t i = threadIdx.x; i < rows * pieces; i += kThreads) {
    const int r = static_cast<int>(i / pieces);
    const int64_t h = i % pieces * kCollapseVector, t = first + r;
    float sum[kCollapseVector] = {};
#pragma unroll
    for (int j = 0; j < N; ++j) {
      float v[kCollapseVector];
      load<bf16, kCollapseVector>(new_streams + (t * N + j) * hidden + h, v);
#pragma unroll
      for (int e = 0; e < kCollapseVector; ++e) sum[e] += pre_of[r * N + j] * v[e];  // hc_collapse's order
    }
    store<bf16, kCollapseVector>(next_input + t * hidden + h, sum);
  }
}

}  // namespace

namespace launch {

void hc_boundary_forward(const void* streams, const void* branch, const float* post, const float* res, const void* fn,
                         const float* base, const float* scale, float norm_eps, float eps, void* new_streams,
                         void* next_input, float* f, float* rstd, int64_t tokens, int64_t n, int64_t hidden,
                         Stream stream) {
  const char* what = "hc_boundary_forward";
  if (!hc_boundary_forward_fits(n, hidden))
    fail(what, ": n ", n, " and hidden ", hidden, "; expected n in 1..", kMaxHyperStreams,
         " and hidden a multiple of ", n <= 4 ? 128 : 64);
  const std::pair<const char*, const void*> arrays[] = {
      {"streams", streams}, {"branch", branch}, {"fn", fn}, {"new_streams", new_streams}, {"next_input", next_input}};
  for (const auto& [name, p] : arrays)
    if (!host::aligned(p, 16)) fail(what, ": ", name, " at ", p, " is not 16-byte aligned; every bfloat16 array must be");
  if (tokens == 0) return;
  const int64_t blocks = (tokens + kRows - 1) / kRows;
  if (blocks > 0x7fffffff) fail(what, ": ", tokens, " tokens, more than one launch takes");
  host::dispatch_streams(n, what, [&](auto size) {
    constexpr int N = decltype(size)::value;
    constexpr int bytes = ForwardShape<N>::bytes;
    cudaFuncSetAttribute(boundary_forward_kernel<N>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    boundary_forward_kernel<N><<<static_cast<unsigned>(blocks), kThreads, bytes, host::as_cuda(stream)>>>(
        static_cast<const bf16*>(streams), static_cast<const bf16*>(branch), post, res, static_cast<const bf16*>(fn),
        base, scale, norm_eps, eps, static_cast<bf16*>(new_streams), static_cast<bf16*>(next_input), f, rstd, tokens,
        hidden);
  });
  host::check_launch(what);
}

}  // namespace launch

}  // namespace strata::kernels
