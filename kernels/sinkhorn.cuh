#pragma once
// Sinkhorn-Knopp's device code on small float32 n x n matrices, shared by the kernels that run it
// in registers: kernels/sinkhorn.cu (strata::kernels::sinkhorn_cuda) and kernels/hc_maps.cu (mHC's
// post and res maps, whose res logits feed it without a trip through memory).
//
// Each matrix gets a group of G lanes of a warp, G = n rounded up to a power of two (so a group
// is an aligned slice of a warp and xor shuffles stay inside it): lane r of the group owns row r
// (n floats in registers), lanes r >= n are idle and add 0 to every column sum. A row sum is the
// lane's own n values in order; a column sum is a butterfly of xor shuffles over the group, which
// hands every lane of the group the same bits (float addition commutes). One thread per matrix
// left only count / 32 warps in flight (512 for 16384 maps of n = 4, ~4 per H100 SM), so the
// latency of every dependent division and exp of the 39-step chain showed; n lanes per matrix
// give n times the warps and a chain of n-wide steps split across them.
//
// The backward needs each normalisation's input, walked backwards. Keeping all of them costs
// steps * n floats a lane (156 for n = 4 at 20 iterations: too many registers, and 80 KB of
// shared memory per 128-lane block, which halves the blocks an SM holds). Instead it keeps
// checkpoints: the forward is cut into segments of S = ceil(sqrt(steps)) steps, the input of
// every segment's first step is kept, and segments are taken last to first, rerunning each from
// its checkpoint and keeping its inner inputs. That is ceil(steps / S) + S - 2 rows a lane (11 for
// 39 steps: 22.5 KB a block for n = 4, 45 KB for n = 8) for one more forward's arithmetic. The
// rows live in shared memory when a block's fit the 48 KB a block gets without opting in to more,
// else (n = 4 past 85 iterations, n = 8 past 25) in a global scratch of tape_plan's size. Each
// lane reads back only what it wrote, so no barrier is needed.
//
// The math is the twin's (strata::sinkhorn_knopp_unrolled): every normalisation divides
// x / (sum + eps) with true division, the row softmax and + eps come first, step k normalises
// columns when k is even and rows when odd. Column sums add the rows pairwise (the butterfly)
// where the twin adds them in order: a difference of float32 rounding, well inside the tests'
// tolerance against the twin.
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace strata::kernels::sinkhorn {

// Threads a block of the Sinkhorn kernels.
constexpr int kThreads = 128;

// Shared memory a block may take without opting in to more.
constexpr int64_t kSharedBytes = 48 * 1024;

// Lanes a matrix gets: n rounded up to a power of two (a divisor of the warp).
__host__ __device__ constexpr int group_lanes(int n) {
  int lanes = 1;
  while (lanes < n) lanes *= 2;
  return lanes;
}

__host__ __device__ constexpr int matrices_per_block(int n) { return kThreads / group_lanes(n); }

inline unsigned blocks_for(int64_t count, int64_t n) {
  const int64_t per_block = matrices_per_block(static_cast<int>(n));
  return static_cast<unsigned>((count + per_block - 1) / per_block);
}

// The matrix and row this thread owns; live when both exist (matrix < count, row < N).
struct Lane {
  int64_t matrix;
  int row;
  bool live;
};

template <int N>
__device__ __forceinline__ Lane this_lane(int64_t count) {
  static_assert(N >= 1 && N <= 32, "one matrix's rows must fit in a warp");
  constexpr int G = group_lanes(N);
  const int64_t matrix = static_cast<int64_t>(blockIdx.x) * matrices_per_block(N) + threadIdx.x / G;
  const int row = static_cast<int>(threadIdx.x % G);
  return {matrix, row, matrix < count && row < N};
}

// Row `lane.row` of matrix `lane.matrix` of [count, N, N] values; zeros for a lane that is not live.
template <int N>
__device__ __forceinline__ void load_row(const float* __restrict__ values, const Lane& lane, float (&row)[N]) {
  const float* p = values + (lane.matrix * N + lane.row) * N;
#pragma unroll
  for (int c = 0; c < N; ++c) row[c] = lane.live ? p[c] : 0.0f;
}

template <int N>
__device__ __forceinline__ void store_row(float* __restrict__ values, const Lane& lane, const float (&row)[N]) {
  if (!lane.live) return;
  float* p = values + (lane.matrix * N + lane.row) * N;
#pragma unroll
  for (int c = 0; c < N; ++c) p[c] = row[c];
}

// Sum of v over the rows of this lane's matrix, handed to every lane of its group. Every lane of
// the warp must call it (full-mask shuffles), live or not; idle rows (row >= N) add 0.
template <int N>
__device__ __forceinline__ float column_sum(float v, int row) {
  constexpr int G = group_lanes(N);
  if constexpr (G != N) v = row < N ? v : 0.0f;
#pragma unroll
  for (int offset = 1; offset < G; offset *= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <int N>
__device__ __forceinline__ float row_sum(const float (&v)[N]) {
  float sum = 0.0f;
#pragma unroll
  for (int c = 0; c < N; ++c) sum += v[c];
  return sum;
}

// Step k: x / (sum + eps) along columns when k is even, along rows when odd, as the twin divides.
template <int N>
__device__ __forceinline__ void normalise(float (&m)[N], int64_t k, int row, float eps) {
  if (k % 2 == 0) {
#pragma unroll
    for (int c = 0; c < N; ++c) m[c] /= column_sum<N>(m[c], row) + eps;
  } else {
    const float denominator = row_sum<N>(m) + eps;
#pragma unroll
    for (int c = 0; c < N; ++c) m[c] /= denominator;
  }
}

// Backward of step k, y = x / (sum + eps): dx = (dy - sum(dy * y)) / (sum + eps) with the sums
// along step k's direction, overwriting d (dy in, dx out); x is the step's input.
template <int N>
__device__ __forceinline__ void normalise_backward(const float (&x)[N], float (&d)[N], int64_t k, int row, float eps) {
  if (k % 2 == 0) {
#pragma unroll
    for (int c = 0; c < N; ++c) {
      const float denominator = column_sum<N>(x[c], row) + eps;
      const float dot = column_sum<N>(d[c] * (x[c] / denominator), row);
      d[c] = (d[c] - dot) / denominator;
    }
  } else {
    const float denominator = row_sum<N>(x) + eps;
    float dot = 0.0f;
#pragma unroll
    for (int c = 0; c < N; ++c) dot += d[c] * (x[c] / denominator);
#pragma unroll
    for (int c = 0; c < N; ++c) d[c] = (d[c] - dot) / denominator;
  }
}

// Softmax of one row of logits into p.
template <int N>
__device__ __forceinline__ void row_softmax(const float (&logits)[N], float (&p)[N]) {
  float peak = logits[0];
#pragma unroll
  for (int c = 1; c < N; ++c) peak = fmaxf(peak, logits[c]);
  float sum = 0.0f;
#pragma unroll
  for (int c = 0; c < N; ++c) {
    p[c] = expf(logits[c] - peak);
    sum += p[c];
  }
#pragma unroll
  for (int c = 0; c < N; ++c) p[c] /= sum;
}

// The input of step 0: row softmax + eps.
template <int N>
__device__ __forceinline__ void first_input(const float (&logits)[N], float (&m)[N], float eps) {
  row_softmax<N>(logits, m);
#pragma unroll
  for (int c = 0; c < N; ++c) m[c] += eps;
}

// The whole forward on this lane's row: m from the logits after `steps` normalisations. Every lane
// of the warp must run it (the column sums shuffle), live or not.
template <int N>
__device__ __forceinline__ void project_row(const float (&logits)[N], float (&m)[N], int row, int64_t steps,
                                            float eps) {
  first_input<N>(logits, m, eps);
  for (int64_t k = 0; k < steps; ++k) normalise<N>(m, k, row, eps);
}

// The backward's saved rows: row `slot` of this lane's tape, entry c, at base[(slot * N + c) * stride],
// so a warp's lanes touch consecutive floats. In shared memory base is this thread's column of
// the block's tape (stride kThreads); in global memory the live lane's column of
// [slots, N, count * N].
template <int N, bool kShared>
struct Tape {
  float* base;
  int64_t global_stride;

  __device__ __forceinline__ float* at(int64_t slot, int c) const {
    if constexpr (kShared)
      return base + (slot * N + c) * kThreads;
    else
      return base + (slot * N + c) * global_stride;
  }
  __device__ __forceinline__ void store(int64_t slot, const float (&v)[N]) const {
#pragma unroll
    for (int c = 0; c < N; ++c) *at(slot, c) = v[c];
  }
  __device__ __forceinline__ void load(int64_t slot, float (&v)[N]) const {
#pragma unroll
    for (int c = 0; c < N; ++c) v[c] = *at(slot, c);
  }
};

// This lane's tape: its column of the block's dynamic shared memory, or of the global scratch of
// `count` matrices.
template <int N, bool kShared>
__device__ __forceinline__ Tape<N, kShared> lane_tape(float* shared, float* scratch, const Lane& lane, int64_t count) {
  if constexpr (kShared)
    return {shared + threadIdx.x, 0};
  else
    return {scratch + lane.matrix * N + lane.row, count * N};
}

// The backward on this lane's row, in two halves so that the caller can load dL/d(result) between
// them (it then takes no registers during the first): keep_checkpoints reruns the forward and
// keeps the input of every segment's first step; backward_from_checkpoints turns d from
// dL/d(result) into dL/d(logits). `segment` steps a segment; the tape holds ceil(steps / segment)
// checkpoints, then the segment's inner inputs (segment - 2 of them: the first is its
// checkpoint, the last stays in m). Every lane of the warp must run both, live or not; only live
// lanes touch the tape.
template <int N, bool kShared>
__device__ __forceinline__ void keep_checkpoints(const float (&logits)[N], const Tape<N, kShared>& tape,
                                                 const Lane& lane, int64_t steps, int64_t segment, float eps) {
  const int64_t segments = (steps + segment - 1) / segment;
  float m[N];
  first_input<N>(logits, m, eps);
  for (int64_t j = 0; j + 1 < segments; ++j) {
    if (lane.live) tape.store(j, m);
    for (int64_t k = j * segment; k < (j + 1) * segment; ++k) normalise<N>(m, k, lane.row, eps);
  }
  if (lane.live) tape.store(segments - 1, m);
}

template <int N, bool kShared>
__device__ __forceinline__ void backward_from_checkpoints(const float (&logits)[N], float (&d)[N],
                                                          const Tape<N, kShared>& tape, const Lane& lane, int64_t steps,
                                                          int64_t segment, float eps) {
  const int64_t segments = (steps + segment - 1) / segment;
  float m[N];
  for (int64_t j = segments - 1; j >= 0; --j) {
    const int64_t first = j * segment, last = first + segment < steps ? first + segment : steps;
    const auto inner_slot = [&](int64_t k) { return segments + (k - first - 1); };  // first < k < last - 1
    if (lane.live) tape.load(j, m);
    for (int64_t k = first; k + 1 < last; ++k) {
      if (k > first && lane.live) tape.store(inner_slot(k), m);
      normalise<N>(m, k, lane.row, eps);
    }
    for (int64_t k = last - 1; k >= first; --k) {
      if (k + 1 < last && lane.live) tape.load(k == first ? j : inner_slot(k), m);
      normalise_backward<N>(m, d, k, lane.row, eps);
    }
  }

  // + eps passes the gradient through; the row softmax's backward is p * (d - sum_row(d * p)).
  row_softmax<N>(logits, m);
  float dot = 0.0f;
#pragma unroll
  for (int c = 0; c < N; ++c) dot += d[c] * m[c];
#pragma unroll
  for (int c = 0; c < N; ++c) d[c] = m[c] * (d[c] - dot);
}

// The smallest s with s * s >= steps (steps >= 1).
inline int64_t ceil_sqrt(int64_t steps) {
  auto s = static_cast<int64_t>(std::sqrt(static_cast<double>(steps)));
  while (s * s < steps) ++s;
  while (s > 1 && (s - 1) * (s - 1) >= steps) --s;
  return s;
}

// How the backward keeps the inputs of its 2 * iters - 1 normalisations.
struct TapePlan {
  int64_t steps;
  int64_t segment;  // steps a segment
  int64_t rows;     // checkpoints and inner inputs a lane; never more than `steps`
  bool shared;      // whether a block's rows fit in shared memory (else the global scratch)

  int64_t shared_bytes(int64_t n) const {
    return shared ? rows * n * kThreads * static_cast<int64_t>(sizeof(float)) : 0;
  }
  int64_t scratch_floats(int64_t count, int64_t n) const { return shared ? 0 : rows * count * n * n; }
};

inline TapePlan tape_plan(int64_t n, int64_t iters) {
  TapePlan plan;
  plan.steps = 2 * iters - 1;
  plan.segment = ceil_sqrt(plan.steps);
  plan.rows = (plan.steps + plan.segment - 1) / plan.segment + std::max<int64_t>(plan.segment - 2, 0);
  plan.shared = plan.rows * n * kThreads * static_cast<int64_t>(sizeof(float)) <= kSharedBytes;
  return plan;
}

}  // namespace strata::kernels::sinkhorn
