// The mHC (manifold-constrained hyper-connection) stream kernels: the RMS factor of the
// projection that feeds the maps, the collapse of the n streams into the sublayer input, and the
// combine of the streams with the sublayer output. The LibTorch twins broadcast [tokens, n, hidden] float32
// temporaries for each of these (and again in backward); here every kernel reads the streams
// once and writes its result once, with float32 math and one rounding.
//
// The projection f = rstd * (x @ W^T) has few outputs per token (2n + n^2, 24 for n = 4); a
// CUDA-core kernel that stages W in shared memory ran 2.3x slower on an H100 than cuBLAS's product
// plus this file's one-pass RMS factor, so the product is cuBLAS's.
//
// The collapse and combine kernels give each token a group of 64 threads (4 tokens a block): the
// token's maps (n pre/post weights, the n x n residual matrix) sit in registers, the threads
// stride over `hidden`, and the backward's per-token sums over hidden (the maps' gradients) end
// in a fixed-order reduction, so results are deterministic.
#include "common.cuh"
#include "hc_combine.cuh"
#include "token_group.cuh"

namespace strata::kernels {

namespace {

using namespace device;

// ---- projection: the RMS factor (the product itself is cuBLAS's) ----

constexpr int kRstdWarps = 8;  // rows per block in row_rstd

template <class T>
__global__ void __launch_bounds__(kRstdWarps * 32)
    rstd_kernel(const T* __restrict__ x, float* __restrict__ rstd, int64_t rows, int64_t cols, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRstdWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const T* xr = x + row * cols;
  float sum = 0.0f;
  for (int64_t c = lane; c < cols; c += 32) {
    const float v = to_float(xr[c]);
    sum += v * v;
  }
  sum = warp_sum(sum);
  if (lane == 0) rstd[row] = rsqrtf(sum / static_cast<float>(cols) + eps);
}

// ---- collapse and combine: a group of kTokenThreads threads per token (token_group.cuh) ----

template <class T, int N>
__global__ void __launch_bounds__(kThreads)
    collapse_forward_kernel(const T* __restrict__ streams, const float* __restrict__ weights, T* __restrict__ out,
                            int64_t tokens, int64_t hidden) {
  const TokenSlot at = token_slot(tokens);
  if (!at.active) return;
  const int64_t t = at.token;
  float w[N];
#pragma unroll
  for (int j = 0; j < N; ++j) w[j] = weights[t * N + j];
  const T* s = streams + t * N * hidden;
  for (int64_t h = at.thread; h < hidden; h += kTokenThreads) {
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < N; ++j) sum += w[j] * to_float(s[j * hidden + h]);
    out[t * hidden + h] = from_float<T>(sum);
  }
}

template <class T, int N>
__global__ void __launch_bounds__(kThreads)
    collapse_backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ streams,
                             const float* __restrict__ weights, T* __restrict__ grad_streams,
                             float* __restrict__ grad_weights, int64_t tokens, int64_t hidden) {
  const TokenSlot at = token_slot(tokens);
  const int64_t t = at.token;
  float w[N], dw[N];
#pragma unroll
  for (int j = 0; j < N; ++j) {
    w[j] = at.active ? weights[t * N + j] : 0.0f;
    dw[j] = 0.0f;
  }
  if (at.active) {
    const T* s = streams + t * N * hidden;
    T* ds = grad_streams + t * N * hidden;
    for (int64_t h = at.thread; h < hidden; h += kTokenThreads) {
      const float g = to_float(grad_out[t * hidden + h]);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        dw[j] += g * to_float(s[j * hidden + h]);
        ds[j * hidden + h] = from_float<T>(w[j] * g);
      }
    }
  }
  token_sums<N>(at, dw, [&](int j, float sum) { grad_weights[t * N + j] = sum; });
}

template <class T, int N>
__global__ void __launch_bounds__(kThreads)
    combine_forward_kernel(const T* __restrict__ streams, const T* __restrict__ branch, const float* __restrict__ post,
                           const float* __restrict__ res, T* __restrict__ out, int64_t tokens, int64_t hidden) {
  const TokenSlot at = token_slot(tokens);
  if (!at.active) return;
  const int64_t t = at.token;
  float p[N], r[N * N];
#pragma unroll
  for (int k = 0; k < N; ++k) p[k] = post[t * N + k];
#pragma unroll
  for (int i = 0; i < N * N; ++i) r[i] = res[t * N * N + i];
  const T* s = streams + t * N * hidden;
  T* o = out + t * N * hidden;
  for (int64_t h = at.thread; h < hidden; h += kTokenThreads) {
    const float b = to_float(branch[t * hidden + h]);
    float v[N];
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = to_float(s[j * hidden + h]);
#pragma unroll
    for (int k = 0; k < N; ++k)
      o[k * hidden + h] = from_float<T>(hc_combine::combined<N>(p, r, b, [&](int j) { return v[j]; }, k));
  }
}

// Per token: d streams_j = sum_k res_jk d out_k, d branch = sum_k post_k d out_k, and the sums
// over hidden d res_jk = <streams_j, d out_k>, d post_k = <d out_k, branch>.
template <class T, int N>
__global__ void __launch_bounds__(kThreads)
    combine_backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ streams, const T* __restrict__ branch,
                            const float* __restrict__ post, const float* __restrict__ res, T* __restrict__ grad_streams,
                            T* __restrict__ grad_branch, float* __restrict__ grad_post, float* __restrict__ grad_res,
                            int64_t tokens, int64_t hidden) {
  const TokenSlot at = token_slot(tokens);
  const int64_t t = at.token;
  float p[N], r[N * N];
  float sums[N * N + N];  // d res (j * N + k), then d post (N * N + k)
#pragma unroll
  for (int k = 0; k < N; ++k) p[k] = at.active ? post[t * N + k] : 0.0f;
#pragma unroll
  for (int i = 0; i < N * N; ++i) r[i] = at.active ? res[t * N * N + i] : 0.0f;
#pragma unroll
  for (int i = 0; i < N * N + N; ++i) sums[i] = 0.0f;
  if (at.active) {
    const T* s = streams + t * N * hidden;
    const T* g = grad_out + t * N * hidden;
    T* ds = grad_streams + t * N * hidden;
    for (int64_t h = at.thread; h < hidden; h += kTokenThreads) {
      const float b = to_float(branch[t * hidden + h]);
      float d[N], v[N];
#pragma unroll
      for (int k = 0; k < N; ++k) d[k] = to_float(g[k * hidden + h]);
#pragma unroll
      for (int j = 0; j < N; ++j) v[j] = to_float(s[j * hidden + h]);
      float db = 0.0f;
#pragma unroll
      for (int k = 0; k < N; ++k) {
        db += p[k] * d[k];
        sums[N * N + k] += d[k] * b;
      }
      grad_branch[t * hidden + h] = from_float<T>(db);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        float dv = 0.0f;
#pragma unroll
        for (int k = 0; k < N; ++k) {
          dv += r[j * N + k] * d[k];
          sums[j * N + k] += v[j] * d[k];
        }
        ds[j * hidden + h] = from_float<T>(dv);
      }
    }
  }
  token_sums<N * N + N>(at, sums, [&](int i, float sum) {
    if (i < N * N)
      grad_res[t * N * N + i] = sum;
    else
      grad_post[t * N + i - N * N] = sum;
  });
}

unsigned rstd_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRstdWarps - 1) / kRstdWarps); }


}  // namespace

namespace launch {

void row_rstd(Dtype dtype, const void* x, float* rstd, int64_t rows, int64_t cols, float eps, Stream stream) {
  if (rows == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    rstd_kernel<T><<<rstd_blocks(rows), kRstdWarps * 32, 0, host::as_cuda(stream)>>>(static_cast<const T*>(x), rstd,
                                                                                     rows, cols, eps);
  });
  host::check_launch("row_rstd");
}

void hc_collapse_forward(Dtype dtype, const void* streams, const float* weights, void* out, int64_t tokens, int64_t n,
                         int64_t hidden, Stream stream) {
  if (tokens * hidden == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    host::dispatch_streams(n, "hc_collapse_forward", [&](auto size) {
      constexpr int N = decltype(size)::value;
      collapse_forward_kernel<T, N><<<host::token_blocks(tokens, "hc_collapse_forward"), kThreads, 0, host::as_cuda(stream)>>>(
          static_cast<const T*>(streams), weights, static_cast<T*>(out), tokens, hidden);
    });
  });
  host::check_launch("hc_collapse_forward");
}

void hc_collapse_backward(Dtype dtype, const void* grad_out, const void* streams, const float* weights,
                          void* grad_streams, float* grad_weights, int64_t tokens, int64_t n, int64_t hidden,
                          Stream stream) {
  if (tokens == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    host::dispatch_streams(n, "hc_collapse_backward", [&](auto size) {
      constexpr int N = decltype(size)::value;
      collapse_backward_kernel<T, N>
          <<<host::token_blocks(tokens, "hc_collapse_backward"), kThreads, 0, host::as_cuda(stream)>>>(
              static_cast<const T*>(grad_out), static_cast<const T*>(streams), weights, static_cast<T*>(grad_streams),
              grad_weights, tokens, hidden);
    });
  });
  host::check_launch("hc_collapse_backward");
}

void hc_combine_forward(Dtype dtype, const void* streams, const void* branch, const float* post, const float* res,
                        void* out, int64_t tokens, int64_t n, int64_t hidden, Stream stream) {
  if (tokens * hidden == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    host::dispatch_streams(n, "hc_combine_forward", [&](auto size) {
      constexpr int N = decltype(size)::value;
      combine_forward_kernel<T, N><<<host::token_blocks(tokens, "hc_combine_forward"), kThreads, 0, host::as_cuda(stream)>>>(
          static_cast<const T*>(streams), static_cast<const T*>(branch), post, res, static_cast<T*>(out), tokens, hidden);
    });
  });
  host::check_launch("hc_combine_forward");
}

void hc_combine_backward(Dtype dtype, const void* grad_out, const void* streams, const void* branch, const float* post,
                         const float* res, void* grad_streams, void* grad_branch, float* grad_post, float* grad_res,
                         int64_t tokens, int64_t n, int64_t hidden, Stream stream) {
  if (tokens == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    host::dispatch_streams(n, "hc_combine_backward", [&](auto size) {
      constexpr int N = decltype(size)::value;
      combine_backward_kernel<T, N>
          <<<host::token_blocks(tokens, "hc_combine_backward"), kThreads, 0, host::as_cuda(stream)>>>(
              static_cast<const T*>(grad_out), static_cast<const T*>(streams), static_cast<const T*>(branch), post, res,
              static_cast<T*>(grad_streams), static_cast<T*>(grad_branch), grad_post, grad_res, tokens, hidden);
    });
  });
  host::check_launch("hc_combine_backward");
}

}  // namespace launch

}  // namespace strata::kernels
