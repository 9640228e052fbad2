// Gated DeltaNet's causal depthwise conv1d over time followed by SiLU, forward and backward, on
// x [B, T, C] with contiguous channels. A thread owns kWidth adjacent channels (one pack, where the
// channel count, strides and pointers allow; one channel otherwise) over a run of kRun
// consecutive time steps and slides the K-tap window along the run in registers, so each element
// of x (and of the output gradient) comes from memory about once; a warp spans one row's
// channels, so its accesses coalesce. The float32 math rounds where the ATen twin (conv1d in the
// dtype, then silu) rounds. Packed documents mask the taps that reach into an earlier document:
// a thread finds the document of its run's first step once (a binary search of cu_seqlens) and
// follows the boundaries from there as its run advances.
#include <initializer_list>

#include "common.cuh"

namespace strata::kernels {

namespace {

using namespace device;

// A block is kPacks channel packs (one warp across a row) by kGroups runs of kRun steps.
constexpr int kPacks = 32;
constexpr int kGroups = 8;
constexpr int kRun = static_cast<int>(launch::kConvSeqTile) / kGroups;
constexpr int kThreads = kPacks * kGroups;
static_assert(kRun * kGroups == launch::kConvSeqTile);

// Channels per thread: 16-byte packs of float32, 8-byte packs of the 16-bit types (a warp still
// reads 256 contiguous bytes of a row). The backward holds four K x W windows per thread (weights,
// inputs, grad_pre, weight-gradient sums): at W = 8 and K = 4 they and the rows in flight need
// over 128 registers (one block per SM, or spills), at W = 4 about 120 (two blocks per SM).
constexpr int kWidth = 4;

// Rows loaded together before any is used, so that several loads per thread are in flight: the
// forward takes 8, the backward two streams of 4. Both then fit two blocks per SM without spills.
constexpr int kForwardBatch = 8;
constexpr int kBackwardBatch = 4;
static_assert(kRun % kForwardBatch == 0);

// The formulas ATen's CUDA silu and silu_backward use.
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu_grad(float x) {
  const float sig = 1.0f / (1.0f + expf(-x));
  return sig * (1.0f + x * (1.0f - sig));
}

// The first step of the document holding step t, for steps asked in increasing order.
template <bool kPacked>
class DocumentStarts {
 public:
  __device__ DocumentStarts(const int64_t* bounds, int64_t documents, int64_t t)
      : bounds_(bounds), documents_(documents) {
    // The last document starting at or before t (the first for t < 0).
    int64_t lo = 0, hi = documents - 1;
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (bounds[mid] <= t)
        lo = mid;
      else
        hi = mid - 1;
    }
    document_ = lo;
    start_ = bounds[lo];
    next_ = bounds[lo + 1];
  }

  __device__ int64_t at(int64_t t) {
    while (t >= next_) {
      ++document_;
      start_ = next_;
      next_ = document_ < documents_ ? bounds_[document_ + 1] : kNever;
    }
    return start_;
  }

 private:
  static constexpr int64_t kNever = INT64_MAX;
  const int64_t* bounds_;
  int64_t documents_;
  int64_t document_ = 0, start_ = 0, next_ = kNever;
};

// Without documents every step's document starts at 0 (steps before 0 are the causal zero padding).
template <>
class DocumentStarts<false> {
 public:
  __device__ DocumentStarts(const int64_t*, int64_t, int64_t) {}
  __device__ int64_t at(int64_t) const { return 0; }
};

// Where this thread's run starts: sequence b, time t0, first channel c.
struct Run {
  int64_t b, t0, c;
};

__device__ __forceinline__ Run run_of(int64_t seq_tiles, int width) {
  return {blockIdx.x / seq_tiles,
          static_cast<int64_t>(blockIdx.x % seq_tiles) * launch::kConvSeqTile + threadIdx.y * kRun,
          (static_cast<int64_t>(blockIdx.y) * kPacks + threadIdx.x) * width};
}

template <class T, int W>
__device__ __forceinline__ void unpack(const Pack<T, W>& pack, float (&out)[W]) {
#pragma unroll
  for (int i = 0; i < W; ++i) out[i] = to_float(pack.v[i]);
}

// Rows t0 .. t0 + N - 1 of one channel pack, as stored; zeros outside [0, seq) (the causal
// padding before the sequence, nothing after it).
template <class T, int W, int N>
__device__ __forceinline__ void load_rows(const T* p, int64_t stride, int64_t t0, int64_t seq, Pack<T, W> (&rows)[N]) {
#pragma unroll
  for (int s = 0; s < N; ++s) {
    const int64_t t = t0 + s;
    rows[s] = t >= 0 && t < seq ? *reinterpret_cast<const Pack<T, W>*>(p + t * stride) : Pack<T, W>{};
  }
}

// w[j][i] = weight[c + i, j].
template <class T, int W, int K>
__device__ __forceinline__ void load_weight(const T* weight, int64_t c, float (&w)[K][W]) {
#pragma unroll
  for (int i = 0; i < W; ++i)
#pragma unroll
    for (int j = 0; j < K; ++j) w[j][i] = to_float(weight[(c + i) * K + j]);
}

// Moves window[i] to window[i + 1], freeing window[0] for the newest step.
template <int W, int K>
__device__ __forceinline__ void shift(float (&window)[K][W]) {
#pragma unroll
  for (int i = K - 1; i > 0; --i)
#pragma unroll
    for (int e = 0; e < W; ++e) window[i][e] = window[i - 1][e];
}

// How many of the K - 1 steps before t are in t's document (its first step `start`): the conv's
// reach back from t.
template <int K>
__device__ __forceinline__ int reach(int64_t t, int64_t start) {
  return static_cast<int>(min(t - start, static_cast<int64_t>(K - 1)));
}

// The conv at the newest step t of `window` (window[i] holds step t - i), rounded to T; with
// packed documents over the taps within t's reach only (window[i] counts for i <= reach). The
// kernels are compiled apart for packed documents, which cost registers: the backward of the
// widest packs uses all 128 without them, and spills a few bytes with them.
template <class T, int W, int K, bool kPacked>
__device__ __forceinline__ float conv_at(const float (&w)[K][W], const float (&window)[K][W], int e, int reach) {
  float pre = 0.0f;
#pragma unroll
  for (int j = 0; j < K; ++j)
    if (!kPacked || K - 1 - j <= reach) pre += w[j][e] * window[K - 1 - j][e];
  return round_to<T>(pre);
}

// Fills window[0 .. K - 2] with the K - 1 steps before t0 (window[i] = x[t0 - 1 - i]).
template <class T, int W, int K>
__device__ __forceinline__ void load_history(const T* in, int64_t stride_t, int64_t t0, int64_t seq,
                                             float (&window)[K][W]) {
  if constexpr (K > 1) {
    Pack<T, W> rows[K - 1];
    load_rows<T, W, K - 1>(in, stride_t, t0 - (K - 1), seq, rows);
#pragma unroll
    for (int i = 0; i < K - 1; ++i) unpack(rows[K - 2 - i], window[i]);
  }
}

template <class T, int W, int K, bool kPacked>
__global__ void __launch_bounds__(kThreads, 2)
    forward_kernel(const T* __restrict__ x, int64_t stride_b, int64_t stride_t, const T* __restrict__ weight,
                   T* __restrict__ out, const int64_t* __restrict__ cu_seqlens, int64_t documents, int64_t seq,
                   int64_t channels, int64_t seq_tiles) {
  const Run run = run_of(seq_tiles, W);
  if (run.c >= channels || run.t0 >= seq) return;
  DocumentStarts<kPacked> starts(cu_seqlens, documents, run.t0);
  float w[K][W];
  load_weight<T, W, K>(weight, run.c, w);
  const T* in = x + run.b * stride_b + run.c;
  T* o = out + run.b * seq * channels + run.c;
  float window[K][W];
  load_history<T, W, K>(in, stride_t, run.t0, seq, window);
#pragma unroll
  for (int s0 = 0; s0 < kRun; s0 += kForwardBatch) {
    Pack<T, W> rows[kForwardBatch];
    load_rows<T, W, kForwardBatch>(in, stride_t, run.t0 + s0, seq, rows);
#pragma unroll
    for (int s = 0; s < kForwardBatch; ++s) {
      const int64_t t = run.t0 + s0 + s;
      shift(window);
      unpack(rows[s], window[0]);
      if (t < seq) {
        const int back = reach<K>(t, starts.at(t));
        float y[W];
#pragma unroll
        for (int e = 0; e < W; ++e) y[e] = silu(conv_at<T, W, K, kPacked>(w, window, e, back));
        store<T, W>(o + t * channels, y);
      }
    }
  }
}

// One run of the backward: grad_pre for steps t0 .. t0 + kRun + K - 2 (each grad_x needs the
// K - 1 after it), grad_x for t0 .. t0 + kRun - 1, and this run's weight-gradient sums in dw.
// x at step s feeds pre at s + i (i < K) only where s + i reaches back i steps within its document.
template <class T, int W, int K, bool kPacked>
__device__ __forceinline__ void backward_run(const T* __restrict__ grad_out, const T* __restrict__ x, int64_t stride_b,
                                             int64_t stride_t, const T* __restrict__ weight, T* __restrict__ grad_x,
                                             DocumentStarts<kPacked>& starts, const Run& run, int64_t seq, int64_t channels,
                                             float (&dw)[K][W]) {
  constexpr int kSteps = kRun + K - 1;
  float w[K][W];
  load_weight<T, W, K>(weight, run.c, w);
  const T* in = x + run.b * stride_b + run.c;
  const T* g = grad_out + run.b * seq * channels + run.c;
  T* d = grad_x + run.b * seq * channels + run.c;
  float xs[K][W];  // xs[i]: x at step t - i
  float gp[K][W];  // gp[i]: grad_pre at step t - i
  // Byte i: the reach of step t - i (at most K - 1 <= 3), all in one register.
  static_assert(K <= 4);
  uint32_t reaches = 0;
  load_history<T, W, K>(in, stride_t, run.t0, seq, xs);
#pragma unroll
  for (int s0 = 0; s0 < kSteps; s0 += kBackwardBatch) {
    Pack<T, W> x_rows[kBackwardBatch], g_rows[kBackwardBatch];
    load_rows<T, W, kBackwardBatch>(in, stride_t, run.t0 + s0, seq, x_rows);
    load_rows<T, W, kBackwardBatch>(g, channels, run.t0 + s0, seq, g_rows);
#pragma unroll
    for (int s = 0; s < kBackwardBatch; ++s) {
      const int step = s0 + s;
      if (step >= kSteps) break;
      const int64_t t = run.t0 + step;
      shift(xs);
      unpack(x_rows[s], xs[0]);
      shift(gp);
      const int back = reach<K>(t, starts.at(t));
      if constexpr (kPacked) reaches = (reaches << 8) | static_cast<uint32_t>(back);
      float grad[W];
      unpack(g_rows[s], grad);
#pragma unroll
      for (int e = 0; e < W; ++e)
        gp[0][e] = t < seq ? round_to<T>(grad[e] * silu_grad(conv_at<T, W, K, kPacked>(w, xs, e, back))) : 0.0f;
      if (step < kRun && t < seq) {
#pragma unroll
        for (int j = 0; j < K; ++j)
          if (!kPacked || K - 1 - j <= back)
#pragma unroll
            for (int e = 0; e < W; ++e) dw[j][e] += gp[0][e] * xs[K - 1 - j][e];
      }
      // grad_x at t - (K - 1) = sum_j w[j] grad_pre[t - j] over the steps t - j that reach back
      // to it (K - 1 - j steps): the window holds all K terms from the K-th step on (the steps
      // before only fill it).
      const int64_t out_t = t - (K - 1);
      if (step >= K - 1 && out_t < seq) {
        float dx[W];
#pragma unroll
        for (int e = 0; e < W; ++e) {
          dx[e] = 0.0f;
#pragma unroll
          for (int j = 0; j < K; ++j)
            if (!kPacked || K - 1 - j <= static_cast<int>((reaches >> (8 * j)) & 0xffu)) dx[e] += w[j][e] * gp[j][e];
        }
        store<T, W>(d + out_t * channels, dx);
      }
    }
  }
}

// One block's weight-gradient sums are reduced over its kGroups runs in shared memory, in group
// order, and written as one row of partial sums (that row's (sequence, time tile) = blockIdx.x).
template <class T, int W, int K, bool kPacked>
__global__ void __launch_bounds__(kThreads, 2)
    backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ x, int64_t stride_b, int64_t stride_t,
                    const T* __restrict__ weight, T* __restrict__ grad_x, float* __restrict__ grad_w_partial,
                    const int64_t* __restrict__ cu_seqlens, int64_t documents, int64_t seq, int64_t channels,
                    int64_t seq_tiles) {
  __shared__ float sums[kGroups][K][kPacks * W];
  const Run run = run_of(seq_tiles, W);
  float dw[K][W] = {};
  if (run.c < channels && run.t0 < seq) {
    DocumentStarts<kPacked> starts(cu_seqlens, documents, run.t0);
    backward_run<T, W, K, kPacked>(grad_out, x, stride_b, stride_t, weight, grad_x, starts, run, seq, channels, dw);
  }
#pragma unroll
  for (int j = 0; j < K; ++j)
#pragma unroll
    for (int e = 0; e < W; ++e) sums[threadIdx.y][j][threadIdx.x * W + e] = dw[j][e];
  __syncthreads();
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kPacks * W;
  float* row = grad_w_partial + static_cast<int64_t>(blockIdx.x) * channels * K;
  // Consecutive threads take consecutive (channel, tap) entries: coalesced writes.
  for (int entry = threadIdx.y * kPacks + threadIdx.x; entry < kPacks * W * K; entry += kThreads) {
    const int local = entry / K, j = entry % K;
    if (c0 + local >= channels) continue;
    float total = 0.0f;
#pragma unroll
    for (int group = 0; group < kGroups; ++group) total += sums[group][j][local];
    row[(c0 + local) * K + j] = total;
  }
}

// Calls f(std::integral_constant<int, K>{}) for a width K in 1..kMaxConvWidth, so that the
// window loops unroll into registers.
template <class F>
void dispatch_width(int64_t width, const char* what, F&& f) {
  static_assert(launch::kMaxConvWidth == 4);
  switch (width) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
  }
  fail(what, ": width is ", width, ", expected 1..", launch::kMaxConvWidth);
}

// Whether rows of x at these strides and the contiguous [batch, seq, channels] arrays at
// `pointers` can be read as packs of W elements of T.
template <class T, int W>
bool packable(int64_t stride_b, int64_t stride_t, int64_t batch, int64_t seq, int64_t channels,
              std::initializer_list<const void*> pointers) {
  if (channels % W != 0 || (batch > 1 && stride_b % W != 0) || (seq > 1 && stride_t % W != 0)) return false;
  for (const void* p : pointers)
    if (!host::aligned(p, sizeof(T) * W)) return false;
  return true;
}

// (sequence, time tile) blocks along x, channel tiles along y.
template <int W>
dim3 grid_for(int64_t batch, int64_t seq, int64_t channels, const char* what) {
  const int64_t rows = launch::causal_conv1d_partial_rows(batch, seq);
  const int64_t channel_tiles = (channels + kPacks * W - 1) / (kPacks * W);
  if (rows > 2147483647 || channel_tiles > 65535)
    fail(what, ": batch ", batch, " x seq ", seq, " x channels ", channels,
         " needs a grid of ", rows, " x ", channel_tiles, " blocks; expected at most 2^31 - 1 x 65535");
  return dim3(static_cast<unsigned>(rows), static_cast<unsigned>(channel_tiles));
}

template <class T, int W, int K, bool kPacked>
void launch_forward(const T* x, int64_t stride_b, int64_t stride_t, const T* weight, T* out,
                    const int64_t* cu_seqlens, int64_t documents, int64_t batch, int64_t seq, int64_t channels,
                    cudaStream_t stream) {
  const int64_t seq_tiles = (seq + launch::kConvSeqTile - 1) / launch::kConvSeqTile;
  forward_kernel<T, W, K, kPacked><<<grid_for<W>(batch, seq, channels, "causal_conv1d_silu_forward"), dim3(kPacks, kGroups), 0,
                            stream>>>(x, stride_b, stride_t, weight, out, cu_seqlens, documents, seq, channels,
                                      seq_tiles);
}

template <class T, int W, int K, bool kPacked>
void launch_backward(const T* grad_out, const T* x, int64_t stride_b, int64_t stride_t, const T* weight, T* grad_x,
                     float* grad_w_partial, const int64_t* cu_seqlens, int64_t documents, int64_t batch, int64_t seq,
                     int64_t channels, cudaStream_t stream) {
  const int64_t seq_tiles = (seq + launch::kConvSeqTile - 1) / launch::kConvSeqTile;
  backward_kernel<T, W, K, kPacked><<<grid_for<W>(batch, seq, channels, "causal_conv1d_silu_backward"), dim3(kPacks, kGroups),
                             0, stream>>>(grad_out, x, stride_b, stride_t, weight, grad_x, grad_w_partial,
                                          cu_seqlens, documents, seq, channels, seq_tiles);
}

// Calls f(std::bool_constant<packed>{}) for whether there are packed documents.
template <class F>
void dispatch_packed(const int64_t* cu_seqlens, F&& f) {
  if (cu_seqlens != nullptr)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// Packed documents take a batch of one row and at least one document.
void check_documents(const int64_t* cu_seqlens, int64_t documents, int64_t batch, const char* what) {
  if (cu_seqlens != nullptr && (batch != 1 || documents < 1))
    fail(what, ": packed documents need a batch of one row and at least one document, got batch ", batch, " and ",
         documents, " documents");
}

}  // namespace

namespace launch {

void causal_conv1d_silu_forward(Dtype dtype, const void* x, int64_t stride_b, int64_t stride_t, const void* weight,
                                void* out, const int64_t* cu_seqlens, int64_t documents, int64_t batch, int64_t seq,
                                int64_t channels, int64_t width, Stream stream) {
  check_documents(cu_seqlens, documents, batch, "causal_conv1d_silu_forward");
  if (batch * seq * channels == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int W = kWidth;
    const auto* in = static_cast<const T*>(x);
    const auto* w = static_cast<const T*>(weight);
    auto* o = static_cast<T*>(out);
    const auto s = host::as_cuda(stream);
    dispatch_width(width, "causal_conv1d_silu_forward", [&](auto k) {
      constexpr int K = decltype(k)::value;
      const bool wide = packable<T, W>(stride_b, stride_t, batch, seq, channels, {in, o});
      dispatch_packed(cu_seqlens, [&](auto packed) {
        constexpr bool kPacked = decltype(packed)::value;
        if (wide)
          launch_forward<T, W, K, kPacked>(in, stride_b, stride_t, w, o, cu_seqlens, documents, batch, seq, channels,
                                           s);
        else
          launch_forward<T, 1, K, kPacked>(in, stride_b, stride_t, w, o, cu_seqlens, documents, batch, seq, channels,
                                           s);
      });
    });
  });
  host::check_launch("causal_conv1d_silu_forward");
}

void causal_conv1d_silu_backward(Dtype dtype, const void* grad_out, const void* x, int64_t stride_b, int64_t stride_t,
                                 const void* weight, void* grad_x, float* grad_w_partial, const int64_t* cu_seqlens,
                                 int64_t documents, int64_t batch, int64_t seq, int64_t channels, int64_t width,
                                 Stream stream) {
  check_documents(cu_seqlens, documents, batch, "causal_conv1d_silu_backward");
  if (batch * seq * channels == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int W = kWidth;
    const auto* g = static_cast<const T*>(grad_out);
    const auto* in = static_cast<const T*>(x);
    const auto* w = static_cast<const T*>(weight);
    auto* d = static_cast<T*>(grad_x);
    const auto s = host::as_cuda(stream);
    dispatch_width(width, "causal_conv1d_silu_backward", [&](auto k) {
      constexpr int K = decltype(k)::value;
      const bool wide = packable<T, W>(stride_b, stride_t, batch, seq, channels, {in, g, d});
      dispatch_packed(cu_seqlens, [&](auto packed) {
        constexpr bool kPacked = decltype(packed)::value;
        if (wide)
          launch_backward<T, W, K, kPacked>(g, in, stride_b, stride_t, w, d, grad_w_partial, cu_seqlens, documents,
                                            batch, seq, channels, s);
        else
          launch_backward<T, 1, K, kPacked>(g, in, stride_b, stride_t, w, d, grad_w_partial, cu_seqlens, documents,
                                            batch, seq, channels, s);
      });
    });
  });
  host::check_launch("causal_conv1d_silu_backward");
}

}  // namespace launch

}  // namespace strata::kernels
