// Sinkhorn-Knopp on a batch of small float32 n x n matrices (mHC's residual maps, one per token),
// forward and backward. One thread owns one matrix in registers, so the 2 * iters - 1
// normalisations cost no launches and no memory traffic; the LibTorch twin runs ~6 small ops per
// normalisation, each a kernel launch over the whole batch, and the same again twice in backward.
// The backward reruns the forward, keeps every normalisation's input in a scratch buffer laid out
// [step][entry][matrix] (a warp's threads touch consecutive floats), and walks it backwards.
#include "common.cuh"

namespace strata::kernels {

namespace {

constexpr int kThreads = 128;

// Index of entry b of row a (kRows) or of column a.
template <int N, bool kRows>
__device__ __forceinline__ int entry(int a, int b) {
  return kRows ? a * N + b : b * N + a;
}

// sum + eps of row (kRows) or column a: what a normalisation divides by.
template <int N, bool kRows>
__device__ __forceinline__ float denominator_of(const float (&m)[N * N], int a, float eps) {
  float sum = 0.0f;
#pragma unroll
  for (int b = 0; b < N; ++b) sum += m[entry<N, kRows>(a, b)];
  return sum + eps;
}

// x / (sum + eps) along rows (kRows) or columns, as the twin divides.
template <int N, bool kRows>
__device__ __forceinline__ void normalise(float (&m)[N * N], float eps) {
#pragma unroll
  for (int a = 0; a < N; ++a) {
    const float denominator = denominator_of<N, kRows>(m, a, eps);
#pragma unroll
    for (int b = 0; b < N; ++b) m[entry<N, kRows>(a, b)] /= denominator;
  }
}

// Backward of y = x / (sum + eps) along rows or columns: dx = (dy - sum(dy * y)) / (sum + eps),
// overwriting d (dy in, dx out); x is the normalisation's input.
template <int N, bool kRows>
__device__ __forceinline__ void normalise_backward(const float (&x)[N * N], float (&d)[N * N], float eps) {
#pragma unroll
  for (int a = 0; a < N; ++a) {
    const float denominator = denominator_of<N, kRows>(x, a, eps);
    float dot = 0.0f;
#pragma unroll
    for (int b = 0; b < N; ++b) dot += d[entry<N, kRows>(a, b)] * (x[entry<N, kRows>(a, b)] / denominator);
#pragma unroll
    for (int b = 0; b < N; ++b) d[entry<N, kRows>(a, b)] = (d[entry<N, kRows>(a, b)] - dot) / denominator;
  }
}

// Row softmax of the logits into p.
template <int N>
__device__ __forceinline__ void row_softmax(const float* __restrict__ logits, float (&p)[N * N]) {
#pragma unroll
  for (int r = 0; r < N; ++r) {
    float peak = logits[r * N];
#pragma unroll
    for (int c = 1; c < N; ++c) peak = fmaxf(peak, logits[r * N + c]);
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < N; ++c) {
      p[r * N + c] = expf(logits[r * N + c] - peak);
      sum += p[r * N + c];
    }
#pragma unroll
    for (int c = 0; c < N; ++c) p[r * N + c] /= sum;
  }
}

// Step k of the forward (k = 0 .. 2 iters - 2) normalises columns when k is even, rows when odd.
// With `scratch`, entry i of step k's input is stored at scratch[(k * N * N + i) * count + matrix].
template <int N>
__device__ __forceinline__ void run_forward(const float* __restrict__ logits, float (&m)[N * N], float* scratch,
                                            int64_t matrix, int64_t count, int64_t steps, float eps) {
  row_softmax<N>(logits, m);
#pragma unroll
  for (int i = 0; i < N * N; ++i) m[i] += eps;
  for (int64_t k = 0; k < steps; ++k) {
    if (scratch != nullptr) {
      float* slot = scratch + k * N * N * count + matrix;
#pragma unroll
      for (int i = 0; i < N * N; ++i) slot[i * count] = m[i];
    }
    if (k % 2 == 0)
      normalise<N, false>(m, eps);
    else
      normalise<N, true>(m, eps);
  }
}

template <int N>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const float* __restrict__ logits, float* __restrict__ out, int64_t count, int64_t steps, float eps) {
  const int64_t matrix = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (matrix >= count) return;
  float m[N * N];
  run_forward<N>(logits + matrix * N * N, m, nullptr, matrix, count, steps, eps);
#pragma unroll
  for (int i = 0; i < N * N; ++i) out[matrix * N * N + i] = m[i];
}

template <int N>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const float* __restrict__ logits, const float* __restrict__ grad_out, float* __restrict__ grad_logits,
                    float* __restrict__ scratch, int64_t count, int64_t steps, float eps) {
  const int64_t matrix = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (matrix >= count) return;
  const float* l = logits + matrix * N * N;
  float m[N * N], d[N * N];
  run_forward<N>(l, m, scratch, matrix, count, steps, eps);
#pragma unroll
  for (int i = 0; i < N * N; ++i) d[i] = grad_out[matrix * N * N + i];
  for (int64_t k = steps - 1; k >= 0; --k) {
    const float* slot = scratch + k * N * N * count + matrix;
#pragma unroll
    for (int i = 0; i < N * N; ++i) m[i] = slot[i * count];
    if (k % 2 == 0)
      normalise_backward<N, false>(m, d, eps);
    else
      normalise_backward<N, true>(m, d, eps);
  }
  // + eps passes the gradient through; the row softmax's backward is p * (d - sum_row(d * p)).
  row_softmax<N>(l, m);
#pragma unroll
  for (int r = 0; r < N; ++r) {
    float dot = 0.0f;
#pragma unroll
    for (int c = 0; c < N; ++c) dot += d[r * N + c] * m[r * N + c];
#pragma unroll
    for (int c = 0; c < N; ++c) grad_logits[matrix * N * N + r * N + c] = m[r * N + c] * (d[r * N + c] - dot);
  }
}

unsigned blocks_for(int64_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

}  // namespace

namespace launch {

void sinkhorn_forward(const float* logits, float* out, int64_t count, int64_t n, int64_t iters, float eps,
                      Stream stream) {
  if (count == 0) return;
  host::dispatch_streams(n, "sinkhorn_forward", [&](auto size) {
    constexpr int N = decltype(size)::value;
    forward_kernel<N><<<blocks_for(count), kThreads, 0, host::as_cuda(stream)>>>(logits, out, count, 2 * iters - 1, eps);
  });
  host::check_launch("sinkhorn_forward");
}

void sinkhorn_backward(const float* logits, const float* grad_out, float* grad_logits, float* scratch, int64_t count,
                       int64_t n, int64_t iters, float eps, Stream stream) {
  if (count == 0) return;
  host::dispatch_streams(n, "sinkhorn_backward", [&](auto size) {
    constexpr int N = decltype(size)::value;
    backward_kernel<N><<<blocks_for(count), kThreads, 0, host::as_cuda(stream)>>>(logits, grad_out, grad_logits,
                                                                                  scratch, count, 2 * iters - 1, eps);
  });
  host::check_launch("sinkhorn_backward");
}

}  // namespace launch

}  // namespace strata::kernels
