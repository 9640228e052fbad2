// mHC's post and res maps from the projection f (strata::kernels::hc_post_res_maps), forward and
// backward, each one kernel over the tokens (the backward adds a small one that sums its
// per-block partial sums). Per token, the maps are
//   post = 2 sigmoid(scale[1] f_post + base_post),   res = sinkhorn(scale[2] f_res + base_res)
// and the LibTorch twin runs ~20 small ops for them (slices, casts of base and scale, products,
// sums, the sigmoid, Sinkhorn) and their autograd backward, each a launch over all tokens.
//
// A token is one Sinkhorn matrix with sinkhorn.cuh's lane group: lane r of the group owns row r of
// the res logits (computed in registers from f, never stored) and entry r of post. The backward
// reruns the forward from f (nothing but f, base and scale is kept), runs Sinkhorn's backward from
// its checkpoints, and writes dL/df's post and res columns. The base and scale gradients are sums
// over tokens: each block adds its tokens' terms in a fixed order into one row of partial sums
// (in the shared memory its Sinkhorn tape used), and a second kernel adds the rows in a fixed
// order, so no atomics, and the same inputs give the same bits (recompute compares bits).
//
// Rounding as the twin's (hc_gates.cuh); the gradients chain as autograd does (the sigmoid's
// backward is g (1 - s) s).
#include "common.cuh"
#include "hc_gates.cuh"
#include "sinkhorn.cuh"
#include "strata/kernels/hc_maps_launch.h"

namespace strata::kernels {

namespace {

using namespace sinkhorn;

constexpr int kReduceThreads = 256;

// Columns of f per token: the pre, post and res logits' inputs.
__host__ __device__ constexpr int map_columns(int n) { return n * (n + 2); }

// A block's partial sums: the post then res logits' gradients (base's post and res entries, in
// base's order), then scale[1]'s and scale[2]'s.
__host__ __device__ constexpr int partial_count(int n) { return n + n * n + 2; }

using hc_gates::logit;
using hc_gates::sigmoid;

// This lane's row of res logits from its token's row of f; zeros for a lane that is not live.
template <int N>
__device__ __forceinline__ void res_logits(const float* __restrict__ f_row, const float* __restrict__ base, float scale,
                                           const Lane& lane, float (&l)[N]) {
  const int first = 2 * N + lane.row * N;
#pragma unroll
  for (int c = 0; c < N; ++c) l[c] = lane.live ? logit(f_row[first + c], scale, base[first + c]) : 0.0f;
}

template <int N>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const float* __restrict__ f, const float* __restrict__ base, const float* __restrict__ scale,
                   float* __restrict__ post, float* __restrict__ res, int64_t tokens, int64_t steps, float eps) {
  // No early return: lanes past `tokens` still take part in their warp's shuffles.
  const Lane lane = this_lane<N>(tokens);
  const float* f_row = f + lane.matrix * map_columns(N);
  if (lane.live)
    post[lane.matrix * N + lane.row] = 2.0f * sigmoid(logit(f_row[N + lane.row], scale[1], base[N + lane.row]));
  float l[N], m[N];
  res_logits<N>(f_row, base, scale[2], lane, l);
  project_row<N>(l, m, lane.row, steps, eps);
  store_row<N>(res, lane, m);
}

template <int N, bool kSharedTape>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const float* __restrict__ f, const float* __restrict__ base, const float* __restrict__ scale,
                    const float* __restrict__ grad_post, const float* __restrict__ grad_res, float* __restrict__ grad_f,
                    float* __restrict__ partials, float* __restrict__ scratch, int64_t tokens, int64_t steps,
                    int64_t segment, float eps) {
  extern __shared__ float shared[];
  constexpr int M = map_columns(N), P = partial_count(N);
  // No early return: lanes past `tokens` still take part in their warp's shuffles and barriers;
  // only live lanes touch memory.
  const Lane lane = this_lane<N>(tokens);
  const int r = lane.row;
  const float* f_row = f + lane.matrix * M;
  float* grad_row = grad_f + lane.matrix * M;
  const float post_scale = scale[1], res_scale = scale[2];

  // post = 2 sigmoid(z): dz = (2 dpost) (1 - s) s.
  float post_logit_grad = 0.0f, post_scale_grad = 0.0f;
  if (lane.live) {
    const float x = f_row[N + r];
    const float s = sigmoid(logit(x, post_scale, base[N + r]));
    const float g = grad_post ? grad_post[lane.matrix * N + r] : 0.0f;
    post_logit_grad = (2.0f * g) * (1.0f - s) * s;
    grad_row[r] = 0.0f;  // pre is not this op's output
    grad_row[N + r] = post_logit_grad * post_scale;
    post_scale_grad = post_logit_grad * x;
  }

  const auto tape = lane_tape<N, kSharedTape>(shared, scratch, lane, tokens);
  float l[N], d[N];
  res_logits<N>(f_row, base, res_scale, lane, l);
  keep_checkpoints<N, kSharedTape>(l, tape, lane, steps, segment, eps);
  if (grad_res != nullptr) {
    load_row<N>(grad_res, lane, d);
  } else {
#pragma unroll
    for (int c = 0; c < N; ++c) d[c] = 0.0f;
  }
  backward_from_checkpoints<N, kSharedTape>(l, d, tape, lane, steps, segment, eps);
  float res_scale_grad = 0.0f;
  if (lane.live) {
    const int first = 2 * N + r * N;
#pragma unroll
    for (int c = 0; c < N; ++c) {
      grad_row[first + c] = d[c] * res_scale;
      res_scale_grad += d[c] * f_row[first + c];
    }
  }

  // The block's partial sums: each matrix's terms into its slice of shared memory, then one
  // thread per entry adds the block's matrices in order.
  const float post_scale_sum = column_sum<N>(post_scale_grad, r);
  const float res_scale_sum = column_sum<N>(res_scale_grad, r);
  __syncthreads();  // every lane is done with the shared tape, which the partial sums reuse
  float* values = shared + (threadIdx.x / group_lanes(N)) * P;
  if (r < N) {
    values[r] = post_logit_grad;
#pragma unroll
    for (int c = 0; c < N; ++c) values[N + r * N + c] = lane.live ? d[c] : 0.0f;
    if (r == 0) {
      values[N + N * N] = post_scale_sum;
      values[N + N * N + 1] = res_scale_sum;
    }
  }
  __syncthreads();
  if (threadIdx.x < P) {
    float sum = 0.0f;
    for (int m = 0; m < matrices_per_block(N); ++m) sum += shared[m * P + threadIdx.x];
    partials[static_cast<int64_t>(blockIdx.x) * P + threadIdx.x] = sum;
  }
}

// One block per partial-sum entry: its sum over the `blocks` rows, into base's or scale's
// gradient; block 0 also writes the zeros of pre's entries.
__global__ void __launch_bounds__(kReduceThreads)
    reduce_kernel(const float* __restrict__ partials, int64_t blocks, int n, float* __restrict__ grad_base,
                  float* __restrict__ grad_scale) {
  __shared__ float scratch[kReduceThreads / 32];
  const int j = blockIdx.x, P = partial_count(n);
  float sum = 0.0f;
  for (int64_t b = threadIdx.x; b < blocks; b += kReduceThreads) sum += partials[b * P + j];
  sum = device::block_sum<kReduceThreads>(sum, scratch);
  if (threadIdx.x != 0) return;
  if (j < n + n * n)
    grad_base[n + j] = sum;
  else
    grad_scale[1 + j - (n + n * n)] = sum;
  if (j == 0) {
    for (int i = 0; i < n; ++i) grad_base[i] = 0.0f;
    grad_scale[0] = 0.0f;
  }
}

}  // namespace

namespace launch {

void hc_post_res_forward(const float* f, const float* base, const float* scale, float* post, float* res, int64_t tokens,
                         int64_t n, int64_t iters, float eps, Stream stream) {
  if (tokens == 0) return;
  host::dispatch_streams(n, "hc_post_res_forward", [&](auto size) {
    constexpr int N = decltype(size)::value;
    forward_kernel<N><<<blocks_for(tokens, N), kThreads, 0, host::as_cuda(stream)>>>(f, base, scale, post, res, tokens,
                                                                                     2 * iters - 1, eps);
  });
  host::check_launch("hc_post_res_forward");
}

int64_t hc_post_res_workspace_floats(int64_t tokens, int64_t n, int64_t iters) {
  return blocks_for(tokens, n) * partial_count(static_cast<int>(n)) + tape_plan(n, iters).scratch_floats(tokens, n);
}

void hc_post_res_backward(const float* f, const float* base, const float* scale, const float* grad_post,
                          const float* grad_res, float* grad_f, float* grad_base, float* grad_scale, float* workspace,
                          int64_t tokens, int64_t n, int64_t iters, float eps, Stream stream) {
  const TapePlan plan = tape_plan(n, iters);
  const int64_t blocks = blocks_for(tokens, n);
  float* partials = workspace;
  float* scratch = workspace + blocks * partial_count(static_cast<int>(n));
  if (tokens > 0) {
    host::dispatch_streams(n, "hc_post_res_backward", [&](auto size) {
      constexpr int N = decltype(size)::value;
      const int64_t partial_bytes = matrices_per_block(N) * partial_count(N) * static_cast<int64_t>(sizeof(float));
      const auto bytes = static_cast<size_t>(std::max(plan.shared_bytes(N), partial_bytes));
      const auto grid = static_cast<unsigned>(blocks);
      if (plan.shared)
        backward_kernel<N, true><<<grid, kThreads, bytes, host::as_cuda(stream)>>>(
            f, base, scale, grad_post, grad_res, grad_f, partials, scratch, tokens, plan.steps, plan.segment, eps);
      else
        backward_kernel<N, false><<<grid, kThreads, bytes, host::as_cuda(stream)>>>(
            f, base, scale, grad_post, grad_res, grad_f, partials, scratch, tokens, plan.steps, plan.segment, eps);
    });
  }
  reduce_kernel<<<partial_count(static_cast<int>(n)), kReduceThreads, 0, host::as_cuda(stream)>>>(
      partials, blocks, static_cast<int>(n), grad_base, grad_scale);
  host::check_launch("hc_post_res_backward");
}

}  // namespace launch

}  // namespace strata::kernels
