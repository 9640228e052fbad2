// Next-token cross-entropy straight from the logits in their own dtype. Forward: one block per
// row reads the row once with an online softmax (running max and sum in float32), keeping only
// the row's loss and logsumexp. Backward: one block per row recomputes softmax from the logits
// and the saved logsumexp and writes (softmax - onehot) * grad / count in the logits' dtype.
// No float32 copy of the logits is ever made.
#include "common.cuh"

namespace strata::kernels {

namespace {

using namespace device;

constexpr int kThreads = 256;

// A partial softmax normaliser: sum of exp(x - max) over the values seen so far.
struct MaxSum {
  float max;
  float sum;
};

__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  if (b.max == -INFINITY) return a;
  if (a.max == -INFINITY) return b;
  const float m = fmaxf(a.max, b.max);
  return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

__device__ __forceinline__ MaxSum block_combine(MaxSum v) {
  __shared__ MaxSum per_warp[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2)
    v = combine(v, {__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)});
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) per_warp[warp] = v;
  __syncthreads();
  v = lane < kThreads / 32 ? per_warp[lane] : MaxSum{-INFINITY, 0.0f};
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2)
    v = combine(v, {__shfl_xor_sync(0xffffffffu, v.max, offset), __shfl_xor_sync(0xffffffffu, v.sum, offset)});
  return v;
}

// The label row (b, t) predicts: labels[b, t + 1], or ignore_index at a sequence's last position.
__device__ __forceinline__ int64_t target_of(const int64_t* labels, int64_t row, int64_t seq, int64_t ignore_index) {
  return row % seq == seq - 1 ? ignore_index : labels[row + 1];
}

template <class T, int W>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ logits, const int64_t* __restrict__ labels, float* __restrict__ loss,
                   float* __restrict__ logsumexp, int64_t seq, int64_t vocab, int64_t ignore_index) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * vocab;
  MaxSum acc{-INFINITY, 0.0f};
  for (int64_t v = threadIdx.x * W; v < vocab; v += kThreads * W) {
    float values[W];
    load<T, W>(x + v, values);
    float pack_max = values[0];
#pragma unroll
    for (int i = 1; i < W; ++i) pack_max = fmaxf(pack_max, values[i]);
    const float m = fmaxf(acc.max, pack_max);
    if (m == -INFINITY) continue;  // every value so far is -inf: nothing to add yet
    float added = 0.0f;
#pragma unroll
    for (int i = 0; i < W; ++i) added += expf(values[i] - m);
    acc = {m, acc.sum * expf(acc.max - m) + added};
  }
  acc = block_combine(acc);
  if (threadIdx.x == 0) {
    const float lse = acc.max + logf(acc.sum);
    logsumexp[row] = lse;
    const int64_t target = target_of(labels, row, seq, ignore_index);
    if (target == ignore_index)
      loss[row] = 0.0f;
    else if (target < 0 || target >= vocab)
      loss[row] = NAN;
    else
      loss[row] = lse - to_float(x[target]);
  }
}

template <class T, int W>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* __restrict__ logits, const int64_t* __restrict__ labels,
                    const float* __restrict__ logsumexp, const float* __restrict__ grad_loss,
                    const float* __restrict__ count, T* __restrict__ grad_logits, int64_t seq, int64_t vocab,
                    int64_t ignore_index) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * vocab;
  T* dx = grad_logits + row * vocab;
  const int64_t target = target_of(labels, row, seq, ignore_index);
  const bool ignored = target == ignore_index;
  const float scale = ignored ? 0.0f : *grad_loss / *count;
  const float lse = logsumexp[row];
  for (int64_t v = threadIdx.x * W; v < vocab; v += kThreads * W) {
    float out[W];
    if (ignored) {
#pragma unroll
      for (int i = 0; i < W; ++i) out[i] = 0.0f;
    } else {
      float values[W];
      load<T, W>(x + v, values);
#pragma unroll
      for (int i = 0; i < W; ++i) out[i] = (expf(values[i] - lse) - (v + i == target ? 1.0f : 0.0f)) * scale;
    }
    store<T, W>(dx + v, out);
  }
}

}  // namespace

namespace launch {

void cross_entropy_forward(Dtype dtype, const void* logits, const int64_t* labels, float* loss, float* logsumexp,
                           int64_t batch, int64_t seq, int64_t vocab, int64_t ignore_index, Stream stream) {
  const int64_t rows = batch * seq;
  if (rows == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int W = host::pack_width<T>;
    const auto* x = static_cast<const T*>(logits);
    const auto s = host::as_cuda(stream);
    if (vocab % W == 0 && host::aligned(x, 16))
      forward_kernel<T, W><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, labels, loss, logsumexp, seq, vocab,
                                                                           ignore_index);
    else
      forward_kernel<T, 1><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, labels, loss, logsumexp, seq, vocab,
                                                                           ignore_index);
  });
  host::check_launch("cross_entropy_forward");
}

void cross_entropy_backward(Dtype dtype, const void* logits, const int64_t* labels, const float* logsumexp,
                            const float* grad_loss, const float* count, void* grad_logits, int64_t batch, int64_t seq,
                            int64_t vocab, int64_t ignore_index, Stream stream) {
  const int64_t rows = batch * seq;
  if (rows == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int W = host::pack_width<T>;
    const auto* x = static_cast<const T*>(logits);
    auto* dx = static_cast<T*>(grad_logits);
    const auto s = host::as_cuda(stream);
    if (vocab % W == 0 && host::aligned(x, 16) && host::aligned(dx, 16))
      backward_kernel<T, W><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, labels, logsumexp, grad_loss, count,
                                                                            dx, seq, vocab, ignore_index);
    else
      backward_kernel<T, 1><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, labels, logsumexp, grad_loss, count,
                                                                            dx, seq, vocab, ignore_index);
  });
  host::check_launch("cross_entropy_backward");
}

}  // namespace launch

}  // namespace strata::kernels
