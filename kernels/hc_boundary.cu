// mHC's fused half boundary (strata::kernels::hc_boundary): the combine that also gives the next
// projection's RMS factor; the next half's pre map and collapse from the projection's product; in
// backward, the per-token gradients of the projection and the pre map (with the dots of the
// collapse's weight gradient), their sums into base's and scale's gradients, and the pass that
// sums every gradient reaching the new streams and runs the combine's backward.
// Token groups as in kernels/hyper_connection.cu (token_group.cuh), with each thread moving V
// consecutive elements of `hidden` per access (vector loads of V * sizeof(T) bytes) where every
// row is aligned for it; float32 math, one rounding per stored value.
#include "common.cuh"
#include "hc_combine.cuh"
#include "hc_gates.cuh"
#include "strata/kernels/hc_boundary_launch.h"
#include "token_group.cuh"

namespace strata::kernels {

namespace {

using namespace device;

template <class T, int N, int V>
__global__ void __launch_bounds__(kThreads)
    boundary_combine_kernel(const T* __restrict__ streams, const T* __restrict__ branch, const float* __restrict__ post,
                            const float* __restrict__ res, T* __restrict__ out, float* __restrict__ rstd,
                            int64_t tokens, int64_t hidden, float eps) {
  const TokenSlot at = token_slot(tokens);
  const int64_t t = at.token;
  float sums[1] = {0.0f};  // sum of the stored new streams' squares
  if (at.active) {
    float p[N], r[N * N];
#pragma unroll
    for (int k = 0; k < N; ++k) p[k] = post[t * N + k];
#pragma unroll
    for (int i = 0; i < N * N; ++i) r[i] = res[t * N * N + i];
    const T* s = streams + t * N * hidden;
    T* o = out + t * N * hidden;
    for (int64_t h = static_cast<int64_t>(at.thread) * V; h < hidden; h += kTokenThreads * V) {
      float b[V], v[N][V];
      load<T, V>(branch + t * hidden + h, b);
#pragma unroll
      for (int j = 0; j < N; ++j) load<T, V>(s + j * hidden + h, v[j]);
#pragma unroll
      for (int k = 0; k < N; ++k) {
        float sum[V];
#pragma unroll
        for (int e = 0; e < V; ++e) {
          sum[e] = hc_combine::combined<N>(p, r, b[e], [&](int j) { return v[j][e]; }, k);
          sum[e] = round_to<T>(sum[e]);  // the RMS factor of what is stored, as hc_project reads it
          sums[0] += sum[e] * sum[e];
        }
        store<T, V>(o + k * hidden + h, sum);
      }
    }
  }
  token_sums<1>(at, sums, [&](int, float total) {
    rstd[t] = rsqrtf(total / static_cast<float>(N * hidden) + eps);
  });
}

// The next half's projection from cuBLAS's product, its pre map and its collapse, per token:
// f = product * rstd (float32), pre_k = sigmoid(scale[0] f_k + base_k) + eps, out = sum_j pre_j
// streams_j, each rounded as the twin's ops round it (float32 f, then the collapse's sum).
template <class T, int N, int V>
__global__ void __launch_bounds__(kThreads)
    boundary_collapse_kernel(const T* __restrict__ streams, const T* __restrict__ product,
                             const float* __restrict__ rstd, const float* __restrict__ base,
                             const float* __restrict__ scale, float eps, T* __restrict__ out, float* __restrict__ f,
                             int64_t tokens, int64_t hidden) {
  constexpr int M = 2 * N + N * N;
  const TokenSlot at = token_slot(tokens);
  if (!at.active) return;
  const int64_t t = at.token;
  const float r = rstd[t];
  for (int m = at.thread; m < M; m += kTokenThreads) f[t * M + m] = __fmul_rn(to_float(product[t * M + m]), r);
  float w[N];
#pragma unroll
  for (int k = 0; k < N; ++k)
    w[k] = __fadd_rn(hc_gates::sigmoid(hc_gates::logit(__fmul_rn(to_float(product[t * M + k]), r), scale[0], base[k])),
                     eps);
  const T* s = streams + t * N * hidden;
  for (int64_t h = static_cast<int64_t>(at.thread) * V; h < hidden; h += kTokenThreads * V) {
    float sum[V];
#pragma unroll
    for (int e = 0; e < V; ++e) sum[e] = 0.0f;
#pragma unroll
    for (int j = 0; j < N; ++j) {
      float v[V];
      load<T, V>(s + j * hidden + h, v);
#pragma unroll
      for (int e = 0; e < V; ++e) sum[e] += w[j] * v[e];  // hc_collapse's sum, in its order
    }
    store<T, V>(out + t * hidden + h, sum);
  }
}

// The backward's per-token part before the pass over the streams: dL/dpre_k = <grad_input,
// new_streams_k> (zero without grad_input), through pre's sigmoid into dL/df's pre columns, added
// to grad_f (the post and res maps' dL/df; null for none); then the projection's a = rstd dL/df
// (in T, the product's operand), its RMS term c = rstd^2 / width sum_m dL/df_m f_m, pre itself,
// and per token the terms of base's and scale[0]'s gradients (dL/dlogit and dL/dlogit f).
template <class T, int N, int V>
__global__ void __launch_bounds__(kThreads)
    boundary_projection_grad_kernel(const T* __restrict__ grad_input, const T* __restrict__ new_streams,
                                    const float* __restrict__ f, const float* __restrict__ grad_f,
                                    const float* __restrict__ rstd, const float* __restrict__ base,
                                    const float* __restrict__ scale, float eps, float width, T* __restrict__ a,
                                    float* __restrict__ c, float* __restrict__ pre, float* __restrict__ grad_logit,
                                    float* __restrict__ grad_logit_f, int64_t tokens, int64_t hidden) {
  constexpr int M = 2 * N + N * N;
  __shared__ float grad_pre[kTokensPerBlock][N];
  const TokenSlot at = token_slot(tokens);
  const int64_t t = at.token;
  float sums[N];
#pragma unroll
  for (int j = 0; j < N; ++j) sums[j] = 0.0f;
  if (at.active && grad_input != nullptr) {
    const T* s = new_streams + t * N * hidden;
    for (int64_t h = static_cast<int64_t>(at.thread) * V; h < hidden; h += kTokenThreads * V) {
      float g[V];
      load<T, V>(grad_input + t * hidden + h, g);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        float v[V];
        load<T, V>(s + j * hidden + h, v);
#pragma unroll
        for (int e = 0; e < V; ++e) sums[j] += g[e] * v[e];
      }
    }
  }
  token_sums<N>(at, sums, [&](int j, float sum) { grad_pre[at.slot][j] = sum; });
  __syncthreads();
  const float r = at.active ? rstd[t] : 0.0f;
  float dot[1] = {0.0f};  // this thread's part of sum_m dL/df_m f_m
  if (at.active) {
    for (int m = at.thread; m < M; m += kTokenThreads) {
      const float x = f[t * M + m];
      float df = grad_f != nullptr ? grad_f[t * M + m] : 0.0f;
      if (m < N) {
        const float sig = hc_gates::sigmoid(hc_gates::logit(x, scale[0], base[m]));
        const float gl = __fmul_rn(__fmul_rn(grad_pre[at.slot][m], sig), 1.0f - sig);
        df = __fadd_rn(df, __fmul_rn(gl, scale[0]));
        pre[t * N + m] = __fadd_rn(sig, eps);
        grad_logit[t * N + m] = gl;
        grad_logit_f[t * N + m] = __fmul_rn(gl, x);
      }
      a[t * M + m] = from_float<T>(__fmul_rn(df, r));
      dot[0] = __fmaf_rn(df, x, dot[0]);
    }
  }
  token_sums<1>(at, dot, [&](int, float sum) { c[t] = __fdiv_rn(__fmul_rn(sum, __fmul_rn(r, r)), width); });
}

template <class T, int N, int V>
__global__ void __launch_bounds__(kThreads)
    boundary_backward_kernel(const T* __restrict__ grad_new, const T* __restrict__ grad_input,
                             const float* __restrict__ pre, const T* __restrict__ proj_grad,
                             const float* __restrict__ rms, const T* __restrict__ new_streams,
                             const T* __restrict__ streams, const T* __restrict__ branch,
                             const float* __restrict__ post, const float* __restrict__ res,
                             T* __restrict__ grad_streams, T* __restrict__ grad_branch, float* __restrict__ grad_post,
                             float* __restrict__ grad_res, int64_t tokens, int64_t hidden) {
  const TokenSlot at = token_slot(tokens);
  const int64_t t = at.token;
  float sums[N * N + N];  // d res (j * N + k), then d post (N * N + k)
#pragma unroll
  for (int i = 0; i < N * N + N; ++i) sums[i] = 0.0f;
  if (at.active) {
    float p[N], w[N], r[N * N];
#pragma unroll
    for (int k = 0; k < N; ++k) {
      p[k] = post[t * N + k];
      w[k] = pre[t * N + k];
    }
#pragma unroll
    for (int i = 0; i < N * N; ++i) r[i] = res[t * N * N + i];
    const float c = rms[t];
    const int64_t base = t * N * hidden;
    for (int64_t h = static_cast<int64_t>(at.thread) * V; h < hidden; h += kTokenThreads * V) {
      float gi[V], b[V], g[N][V];
      if (grad_input != nullptr) {
        load<T, V>(grad_input + t * hidden + h, gi);
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) gi[e] = 0.0f;
      }
      load<T, V>(branch + t * hidden + h, b);
      // G_k: every gradient that reaches the new stream k.
#pragma unroll
      for (int k = 0; k < N; ++k) {
        float a[V], x[V];
        load<T, V>(proj_grad + base + k * hidden + h, a);
        load<T, V>(new_streams + base + k * hidden + h, x);
#pragma unroll
        for (int e = 0; e < V; ++e) g[k][e] = a[e] - c * x[e] + w[k] * gi[e];
        if (grad_new != nullptr) {
          load<T, V>(grad_new + base + k * hidden + h, a);
#pragma unroll
          for (int e = 0; e < V; ++e) g[k][e] += a[e];
        }
      }
      float db[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        db[e] = 0.0f;
#pragma unroll
        for (int k = 0; k < N; ++k) {
          db[e] += p[k] * g[k][e];
          sums[N * N + k] += g[k][e] * b[e];
        }
      }
      store<T, V>(grad_branch + t * hidden + h, db);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        float v[V], ds[V];
        load<T, V>(streams + base + j * hidden + h, v);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          ds[e] = 0.0f;
#pragma unroll
          for (int k = 0; k < N; ++k) {
            ds[e] += r[j * N + k] * g[k][e];
            sums[j * N + k] += v[e] * g[k][e];
          }
        }
        store<T, V>(grad_streams + base + j * hidden + h, ds);
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

// base's and scale's gradients through pre from the per-token terms, one block an entry, each a
// fixed-order sum (the same bits for the same inputs): grad_base[k] = sum_t grad_logit[t, k] for
// k < n, grad_scale[0] = sum_t sum_k grad_logit_f[t, k]; block 0 also writes the zeros of base's
// post and res entries and of scale[1] and scale[2] (the post and res maps' gradients come apart).
constexpr int kBiasThreads = 256;

__global__ void __launch_bounds__(kBiasThreads)
    bias_grads_kernel(const float* __restrict__ grad_logit, const float* __restrict__ grad_logit_f, int64_t tokens,
                      int n, int maps, float* __restrict__ grad_base, float* __restrict__ grad_scale) {
  __shared__ float scratch[kBiasThreads / 32];
  const int entry = blockIdx.x;
  float sum = 0.0f;
  if (entry < n) {
    for (int64_t t = threadIdx.x; t < tokens; t += kBiasThreads) sum += grad_logit[t * n + entry];
  } else {
    for (int64_t i = threadIdx.x; i < tokens * n; i += kBiasThreads) sum += grad_logit_f[i];
  }
  sum = block_sum<kBiasThreads>(sum, scratch);
  if (threadIdx.x != 0) return;
  if (entry < n)
    grad_base[entry] = sum;
  else
    grad_scale[0] = sum;
  if (entry == 0) {
    for (int m = n; m < maps; ++m) grad_base[m] = 0.0f;
    grad_scale[1] = grad_scale[2] = 0.0f;
  }
}

// Calls f(std::integral_constant<int, V>{}) with V the widest vector (16 bytes for n <= 4, 8
// above, to bound the registers the n x V tiles take) that divides `hidden` and aligns every
// pointer; else 1.
template <class T, int N, class F>
void dispatch_vector(int64_t hidden, std::initializer_list<const void*> pointers, F&& f) {
  constexpr int kWide = (N <= 4 ? 16 : 8) / static_cast<int>(sizeof(T));
  bool fits = hidden % kWide == 0;
  for (const void* p : pointers) fits = fits && (p == nullptr || host::aligned(p, kWide * sizeof(T)));
  if (fits) return f(std::integral_constant<int, kWide>{});
  f(std::integral_constant<int, 1>{});
}

}  // namespace

namespace launch {

void hc_boundary_combine(Dtype dtype, const void* streams, const void* branch, const float* post, const float* res,
                         void* out, float* rstd, int64_t tokens, int64_t n, int64_t hidden, float eps, Stream stream) {
  if (tokens == 0) return;
  const char* what = "hc_boundary_combine";
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    host::dispatch_streams(n, what, [&](auto size) {
      constexpr int N = decltype(size)::value;
      dispatch_vector<T, N>(hidden, {streams, branch, out}, [&](auto width) {
        constexpr int V = decltype(width)::value;
        boundary_combine_kernel<T, N, V><<<host::token_blocks(tokens, what), kThreads, 0, host::as_cuda(stream)>>>(
            static_cast<const T*>(streams), static_cast<const T*>(branch), post, res, static_cast<T*>(out), rstd,
            tokens, hidden, eps);
      });
    });
  });
  host::check_launch(what);
}

void hc_boundary_collapse(Dtype dtype, const void* streams, const void* product, const float* rstd, const float* base,
                          const float* scale, float eps, void* out, float* f, int64_t tokens, int64_t n, int64_t hidden,
                          Stream stream) {
  if (tokens == 0) return;
  const char* what = "hc_boundary_collapse";
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    host::dispatch_streams(n, what, [&](auto size) {
      constexpr int N = decltype(size)::value;
      dispatch_vector<T, N>(hidden, {streams, out}, [&](auto width) {
        constexpr int V = decltype(width)::value;
        boundary_collapse_kernel<T, N, V><<<host::token_blocks(tokens, what), kThreads, 0, host::as_cuda(stream)>>>(
            static_cast<const T*>(streams), static_cast<const T*>(product), rstd, base, scale, eps,
            static_cast<T*>(out), f, tokens, hidden);
      });
    });
  });
  host::check_launch(what);
}

void hc_boundary_projection_grad(Dtype dtype, const void* grad_input, const void* new_streams, const float* f,
                                 const float* grad_f, const float* rstd, const float* base, const float* scale,
                                 float eps, void* a, float* c, float* pre, float* grad_logit, float* grad_logit_f,
                                 int64_t tokens, int64_t n, int64_t hidden, Stream stream) {
  if (tokens == 0) return;
  const char* what = "hc_boundary_projection_grad";
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    host::dispatch_streams(n, what, [&](auto size) {
      constexpr int N = decltype(size)::value;
      dispatch_vector<T, N>(hidden, {grad_input, new_streams}, [&](auto width) {
        constexpr int V = decltype(width)::value;
        boundary_projection_grad_kernel<T, N, V>
            <<<host::token_blocks(tokens, what), kThreads, 0, host::as_cuda(stream)>>>(
                static_cast<const T*>(grad_input), static_cast<const T*>(new_streams), f, grad_f, rstd, base, scale,
                eps, static_cast<float>(n * hidden), static_cast<T*>(a), c, pre, grad_logit, grad_logit_f, tokens,
                hidden);
      });
    });
  });
  host::check_launch(what);
}

void hc_boundary_bias_grads(const float* grad_logit, const float* grad_logit_f, int64_t tokens, int64_t n,
                            float* grad_base, float* grad_scale, Stream stream) {
  bias_grads_kernel<<<static_cast<unsigned>(n + 1), kBiasThreads, 0, host::as_cuda(stream)>>>(
      grad_logit, grad_logit_f, tokens, static_cast<int>(n), static_cast<int>(2 * n + n * n), grad_base, grad_scale);
  host::check_launch("hc_boundary_bias_grads");
}

void hc_boundary_backward(Dtype dtype, const void* grad_new, const void* grad_input, const float* pre,
                          const void* proj_grad, const float* rms, const void* new_streams, const void* streams,
                          const void* branch, const float* post, const float* res, void* grad_streams,
                          void* grad_branch, float* grad_post, float* grad_res, int64_t tokens, int64_t n,
                          int64_t hidden, Stream stream) {
  if (tokens == 0) return;
  const char* what = "hc_boundary_backward";
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    host::dispatch_streams(n, what, [&](auto size) {
      constexpr int N = decltype(size)::value;
      dispatch_vector<T, N>(
          hidden, {grad_new, grad_input, proj_grad, new_streams, streams, branch, grad_streams, grad_branch},
          [&](auto width) {
            constexpr int V = decltype(width)::value;
            boundary_backward_kernel<T, N, V><<<host::token_blocks(tokens, what), kThreads, 0, host::as_cuda(stream)>>>(
                static_cast<const T*>(grad_new), static_cast<const T*>(grad_input), pre,
                static_cast<const T*>(proj_grad), rms, static_cast<const T*>(new_streams),
                static_cast<const T*>(streams), static_cast<const T*>(branch), post, res,
                static_cast<T*>(grad_streams), static_cast<T*>(grad_branch), grad_post, grad_res, tokens, hidden);
          });
    });
  });
  host::check_launch(what);
}

}  // namespace launch

}  // namespace strata::kernels
