// Sinkhorn-Knopp on a batch of small float32 n x n matrices (mHC's residual maps, one per token),
// forward and backward, with the 2 * iters - 1 normalisations in registers: no launches and no
// memory traffic between them (the LibTorch twin runs ~6 small ops per normalisation, each a
// kernel launch over the whole batch, and the same again twice in backward). The device code,
// its lane groups and the backward's checkpoints are in sinkhorn.cuh.
#include "common.cuh"
#include "sinkhorn.cuh"

namespace strata::kernels {

namespace {

using namespace sinkhorn;

template <int N>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const float* __restrict__ logits, float* __restrict__ out, int64_t count, int64_t steps, float eps) {
  // No early return: lanes past `count` still take part in their warp's shuffles.
  const Lane lane = this_lane<N>(count);
  float l[N], m[N];
  load_row<N>(logits, lane, l);
  project_row<N>(l, m, lane.row, steps, eps);
  store_row<N>(out, lane, m);
}

template <int N, bool kSharedTape>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const float* __restrict__ logits, const float* __restrict__ grad_out, float* __restrict__ grad_logits,
                    float* __restrict__ scratch, int64_t count, int64_t steps, int64_t segment, float eps) {
  extern __shared__ float shared_tape[];
  // No early return: lanes past `count` still take part in their warp's shuffles; only live
  // lanes touch memory.
  const Lane lane = this_lane<N>(count);
  const auto tape = lane_tape<N, kSharedTape>(shared_tape, scratch, lane, count);
  float l[N], d[N];
  load_row<N>(logits, lane, l);
  keep_checkpoints<N, kSharedTape>(l, tape, lane, steps, segment, eps);
  load_row<N>(grad_out, lane, d);
  backward_from_checkpoints<N, kSharedTape>(l, d, tape, lane, steps, segment, eps);
  store_row<N>(grad_logits, lane, d);
}

}  // namespace

namespace launch {

void sinkhorn_forward(const float* logits, float* out, int64_t count, int64_t n, int64_t iters, float eps,
                      Stream stream) {
  if (count == 0) return;
  host::dispatch_streams(n, "sinkhorn_forward", [&](auto size) {
    constexpr int N = decltype(size)::value;
    forward_kernel<N><<<blocks_for(count, N), kThreads, 0, host::as_cuda(stream)>>>(logits, out, count, 2 * iters - 1,
                                                                                    eps);
  });
  host::check_launch("sinkhorn_forward");
}

int64_t sinkhorn_scratch_floats(int64_t count, int64_t n, int64_t iters) {
  return tape_plan(n, iters).scratch_floats(count, n);
}

void sinkhorn_backward(const float* logits, const float* grad_out, float* grad_logits, float* scratch, int64_t count,
                       int64_t n, int64_t iters, float eps, Stream stream) {
  if (count == 0) return;
  const TapePlan plan = tape_plan(n, iters);
  host::dispatch_streams(n, "sinkhorn_backward", [&](auto size) {
    constexpr int N = decltype(size)::value;
    if (plan.shared)
      backward_kernel<N, true><<<blocks_for(count, N), kThreads, plan.shared_bytes(N), host::as_cuda(stream)>>>(
          logits, grad_out, grad_logits, scratch, count, plan.steps, plan.segment, eps);
    else
      backward_kernel<N, false><<<blocks_for(count, N), kThreads, 0, host::as_cuda(stream)>>>(
          logits, grad_out, grad_logits, scratch, count, plan.steps, plan.segment, eps);
  });
  host::check_launch("sinkhorn_backward");
}

}  // namespace launch

}  // namespace strata::kernels
