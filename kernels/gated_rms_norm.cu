// Gated RMSNorm (Qwen3-Next's RMSNormGated) forward and backward, one kernel each. A group of G
// lanes (a half warp or a warp) owns a row of D <= kMaxGatedRmsNormDim elements and keeps what
// it needs of the row in registers: each lane P packs of W consecutive elements (W = 16 bytes of
// x's dtype where the sizes, strides and pointers allow it, 1 otherwise), so x and gate are read
// once, straight from their strided [B, T, H, D] views. Sums over a row are shuffles inside the
// group. The backward adds each lane's weight-gradient terms over the rows of its block in
// registers, then the block's groups in shared memory in a fixed order, into one partial row per
// block: deterministic, no atomics.
#include <initializer_list>

#include "common.cuh"

namespace strata::kernels {

namespace {

using namespace device;
using launch::RowStrides;

constexpr int kThreads = 256;

// The formulas ATen's CUDA silu and silu_backward use.
__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

// Sum over the G aligned lanes of a group, returned to each; every lane of the warp must call it.
template <int G>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int offset = G / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The first element of row (b, t, h), rows numbered in that order, of a strided [B, T, H, D] view.
template <class T>
__device__ __forceinline__ const T* row_start(const T* base, RowStrides s, int64_t row, int64_t seq, int64_t heads) {
  const int64_t bt = row / heads;
  return base + (bt / seq) * s.batch + (bt % seq) * s.seq + (row % heads) * s.head;
}

// The column of a lane's p-th pack: a group's lanes take consecutive packs.
template <int W, int G>
__device__ __forceinline__ int64_t column(int p, int lane) {
  return static_cast<int64_t>(p * G + lane) * W;
}

template <class Tx, class Tg, int W, int G, int P>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const Tx* __restrict__ x, RowStrides xs, const Tg* __restrict__ gate, RowStrides gs,
                   const float* __restrict__ w, Tx* __restrict__ out, float* __restrict__ rstd, int64_t rows,
                   int64_t seq, int64_t heads, int64_t dim, float eps) {
  constexpr int kGroups = kThreads / G;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / G;
  const int lane = threadIdx.x % G;
  // A group past the last row still joins its warp's shuffles, with zeros.
  const bool active = row < rows;
  const Tx* xr = active ? row_start(x, xs, row, seq, heads) : x;
  float v[P][W];
  float sum = 0.0f;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t c = column<W, G>(p, lane);
    if (!active || c >= dim) continue;
    load<Tx, W>(xr + c, v[p]);
#pragma unroll
    for (int i = 0; i < W; ++i) sum += v[p][i] * v[p][i];
  }
  const float r = rsqrtf(group_sum<G>(sum) / static_cast<float>(dim) + eps);
  if (!active) return;
  if (lane == 0) rstd[row] = r;
  const Tg* gr = row_start(gate, gs, row, seq, heads);
  Tx* orow = out + row * dim;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t c = column<W, G>(p, lane);
    if (c >= dim) continue;
    float g[W], wv[W], o[W];
    load<Tg, W>(gr + c, g);
    load<float, W>(w + c, wv);
#pragma unroll
    for (int i = 0; i < W; ++i) o[i] = wv[i] * round_to<Tx>(v[p][i] * r) * silu(g[i]);  // the twin's order
    store<Tx, W>(orow + c, o);
  }
}

// Per row, with n = x r, s = silu(gate), g = grad_out and d = g w s:
//   grad_gate = g (w x_dtype(n)) silu'(gate)      grad_x = r (d - n mean(d n))
//   weight gradient += g s x_dtype(n)
// The first pass writes grad_gate and keeps n and d for the second, which needs mean(d n).
template <class Tx, class Tg, int W, int G, int P>
__global__ void __launch_bounds__(kThreads, P == 1 ? 4 : 1)
    backward_kernel(const Tx* __restrict__ grad_out, const Tx* __restrict__ x, RowStrides xs,
                    const Tg* __restrict__ gate, RowStrides gs, const float* __restrict__ w,
                    const float* __restrict__ rstd, Tx* __restrict__ grad_x, Tg* __restrict__ grad_gate,
                    float* __restrict__ w_partial, int64_t rows, int64_t rows_per_block, int64_t seq, int64_t heads,
                    int64_t dim) {
  constexpr int kGroups = kThreads / G;
  extern __shared__ float group_dw[];  // [kGroups, dim]: each group's weight-gradient sums
  const int group = threadIdx.x / G, lane = threadIdx.x % G;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t end = begin + rows_per_block < rows ? begin + rows_per_block : rows;
  float dw[P][W];
#pragma unroll
  for (int p = 0; p < P; ++p)
#pragma unroll
    for (int i = 0; i < W; ++i) dw[p][i] = 0.0f;
  // Every group runs the same rounds, so that whole warps reach the shuffles.
  for (int64_t first = begin; first < end; first += kGroups) {
    const int64_t row = first + group;
    const bool active = row < end;
    const float r = active ? rstd[row] : 0.0f;
    float n[P][W], d[P][W];
    float dot = 0.0f;
    if (active) {
      const Tx* xr = row_start(x, xs, row, seq, heads);
      const Tg* gr = row_start(gate, gs, row, seq, heads);
#pragma unroll
      for (int p = 0; p < P; ++p) {
        const int64_t c = column<W, G>(p, lane);
        if (c >= dim) continue;
        float xv[W], gv[W], go[W], wv[W], dg[W];
        load<Tx, W>(xr + c, xv);
        load<Tg, W>(gr + c, gv);
        load<Tx, W>(grad_out + row * dim + c, go);
        load<float, W>(w + c, wv);
#pragma unroll
        for (int i = 0; i < W; ++i) {
          n[p][i] = xv[i] * r;
          const float rounded = round_to<Tx>(n[p][i]), sig = sigmoid(gv[i]), s = silu(gv[i]);
          d[p][i] = go[i] * s * wv[i];
          dot += d[p][i] * n[p][i];
          dg[i] = go[i] * (wv[i] * rounded) * sig * (1.0f + gv[i] * (1.0f - sig));
          dw[p][i] += go[i] * s * rounded;
        }
        store<Tg, W>(grad_gate + row * dim + c, dg);
      }
    }
    const float mean = group_sum<G>(dot) / static_cast<float>(dim);
    if (!active) continue;
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const int64_t c = column<W, G>(p, lane);
      if (c >= dim) continue;
      float dx[W];
#pragma unroll
      for (int i = 0; i < W; ++i) dx[i] = r * (d[p][i] - n[p][i] * mean);
      store<Tx, W>(grad_x + row * dim + c, dx);
    }
  }
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int64_t c = column<W, G>(p, lane);
    if (c >= dim) continue;
#pragma unroll
    for (int i = 0; i < W; ++i) group_dw[group * dim + c + i] = dw[p][i];
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < dim; c += kThreads) {
    float total = 0.0f;
    for (int k = 0; k < kGroups; ++k) total += group_dw[k * dim + c];
    w_partial[static_cast<int64_t>(blockIdx.x) * dim + c] = total;
  }
}

// Calls f(Tag<X>{}, Tag<G>{}) for x's storage type X and gate's G, which is X or float32.
template <class F>
void dispatch_x_gate(launch::Dtype x_dtype, launch::Dtype gate_dtype, const char* what, F&& f) {
  host::dispatch(x_dtype, [&](auto x_tag) {
    if (gate_dtype == x_dtype) return f(x_tag, x_tag);
    if (gate_dtype == launch::Dtype::Float32) return f(x_tag, host::Tag<float>{});
    fail(what, ": gate dtype code ", static_cast<int>(gate_dtype), " is neither x's (", static_cast<int>(x_dtype),
         ") nor float32");
  });
}

// Calls f(G, P) (integral constants) for rows of `dim` in packs of W: a half warp per row up to
// 16 packs, a warp up to 32, and beyond that a warp with as many packs a lane as the longest
// row needs.
template <int W, class F>
void dispatch_shape(int64_t dim, F&& f) {
  const int64_t packs = (dim + W - 1) / W;
  if (packs <= 16) return f(std::integral_constant<int, 16>{}, std::integral_constant<int, 1>{});
  if (packs <= 32) return f(std::integral_constant<int, 32>{}, std::integral_constant<int, 1>{});
  constexpr int kMaxPacks = static_cast<int>(launch::kMaxGatedRmsNormDim) / (32 * W);
  return f(std::integral_constant<int, 32>{}, std::integral_constant<int, kMaxPacks>{});
}

// Calls f(std::integral_constant<int, W>{}) with W = 16 bytes of X when every row start is a
// whole pack away from an aligned base (strides and dim multiples of it), 1 otherwise.
template <class X, class Tg, class F>
void dispatch_width(int64_t dim, RowStrides xs, RowStrides gs, std::initializer_list<const void*> x_typed,
                    std::initializer_list<const void*> gate_typed, const float* w, F&& f) {
  constexpr int W = host::pack_width<X>;
  bool packed = dim % W == 0 && xs.batch % W == 0 && xs.seq % W == 0 && xs.head % W == 0 && gs.batch % W == 0 &&
                gs.seq % W == 0 && gs.head % W == 0 && host::aligned(w, sizeof(float) * W);
  for (const void* p : x_typed) packed = packed && host::aligned(p, sizeof(X) * W);
  for (const void* p : gate_typed) packed = packed && host::aligned(p, sizeof(Tg) * W);
  if (packed) return f(std::integral_constant<int, W>{});
  return f(std::integral_constant<int, 1>{});
}

void check_dim(int64_t dim, const char* what) {
  if (dim < 1 || dim > launch::kMaxGatedRmsNormDim)
    fail(what, ": dim is ", dim, "; expected 1..", launch::kMaxGatedRmsNormDim);
}

}  // namespace

namespace launch {

void gated_rms_norm_forward(Dtype x_dtype, Dtype gate_dtype, const void* x, RowStrides x_strides, const void* gate,
                            RowStrides gate_strides, const float* w, void* out, float* rstd, int64_t batch, int64_t seq,
                            int64_t heads, int64_t dim, float eps, Stream stream) {
  const int64_t rows = batch * seq * heads;
  if (rows == 0) return;
  check_dim(dim, "gated_rms_norm_forward");
  dispatch_x_gate(x_dtype, gate_dtype, "gated_rms_norm_forward", [&](auto x_tag, auto gate_tag) {
    using Tx = typename decltype(x_tag)::type;
    using Tg = typename decltype(gate_tag)::type;
    dispatch_width<Tx, Tg>(dim, x_strides, gate_strides, {x, out}, {gate}, w, [&](auto width) {
      constexpr int W = decltype(width)::value;
      dispatch_shape<W>(dim, [&](auto group, auto packs) {
        constexpr int G = decltype(group)::value, P = decltype(packs)::value;
        const auto blocks = static_cast<unsigned>((rows + kThreads / G - 1) / (kThreads / G));
        forward_kernel<Tx, Tg, W, G, P><<<blocks, kThreads, 0, host::as_cuda(stream)>>>(
            static_cast<const Tx*>(x), x_strides, static_cast<const Tg*>(gate), gate_strides, w,
            static_cast<Tx*>(out), rstd, rows, seq, heads, dim, eps);
      });
    });
  });
  host::check_launch("gated_rms_norm_forward");
}

void gated_rms_norm_backward(Dtype x_dtype, Dtype gate_dtype, const void* grad_out, const void* x, RowStrides x_strides,
                             const void* gate, RowStrides gate_strides, const float* w, const float* rstd, void* grad_x,
                             void* grad_gate, float* w_partial, int64_t blocks, int64_t batch, int64_t seq,
                             int64_t heads, int64_t dim, Stream stream) {
  const int64_t rows = batch * seq * heads;
  if (rows == 0) return;
  check_dim(dim, "gated_rms_norm_backward");
  if (blocks < 1) fail("gated_rms_norm_backward: blocks is ", blocks, " for ", rows, " rows; expected at least 1");
  dispatch_x_gate(x_dtype, gate_dtype, "gated_rms_norm_backward", [&](auto x_tag, auto gate_tag) {
    using Tx = typename decltype(x_tag)::type;
    using Tg = typename decltype(gate_tag)::type;
    dispatch_width<Tx, Tg>(dim, x_strides, gate_strides, {grad_out, x, grad_x}, {gate, grad_gate}, w, [&](auto width) {
      constexpr int W = decltype(width)::value;
      dispatch_shape<W>(dim, [&](auto group, auto packs) {
        constexpr int G = decltype(group)::value, P = decltype(packs)::value;
        const auto shared = static_cast<size_t>(kThreads / G * dim) * sizeof(float);
        backward_kernel<Tx, Tg, W, G, P><<<static_cast<unsigned>(blocks), kThreads, shared, host::as_cuda(stream)>>>(
            static_cast<const Tx*>(grad_out), static_cast<const Tx*>(x), x_strides, static_cast<const Tg*>(gate),
            gate_strides, w, rstd, static_cast<Tx*>(grad_x), static_cast<Tg*>(grad_gate), w_partial, rows,
            (rows + blocks - 1) / blocks, seq, heads, dim);
      });
    });
  });
  host::check_launch("gated_rms_norm_backward");
}

}  // namespace launch

}  // namespace strata::kernels
