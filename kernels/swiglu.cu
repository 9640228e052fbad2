// SwiGLU on fc1's [gate | up] rows, forward and backward, elementwise over packs of 16 bytes
// (when the row length and pointers allow). The float32 math rounds where the ATen twin
// (silu(gate) * up in the storage dtype) rounds, so the two agree to the last bit or nearly.
#include "common.cuh"

namespace strata::kernels {

namespace {

using namespace device;

constexpr int kThreads = 256;

// The formulas ATen's CUDA silu and silu_backward use.
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

template <class T, int W>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ gate_up, T* __restrict__ out, int64_t rows, int64_t cols) {
  const int64_t packs_per_row = cols / W;
  const int64_t packs = rows * packs_per_row;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; p < packs;
       p += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t row = p / packs_per_row, col = (p % packs_per_row) * W;
    const T* gate = gate_up + row * 2 * cols + col;
    float g[W], u[W], o[W];
    load<T, W>(gate, g);
    load<T, W>(gate + cols, u);
#pragma unroll
    for (int i = 0; i < W; ++i) o[i] = round_to<T>(silu(g[i])) * u[i];
    store<T, W>(out + row * cols + col, o);
  }
}

// d gate = T(grad * up) * silu'(gate), d up = grad * T(silu(gate)): the twin's mul backward
// rounds grad * up to T before silu's backward sees it.
template <class T, int W>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ gate_up, T* __restrict__ grad_gate_up,
                    int64_t rows, int64_t cols) {
  const int64_t packs_per_row = cols / W;
  const int64_t packs = rows * packs_per_row;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; p < packs;
       p += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t row = p / packs_per_row, col = (p % packs_per_row) * W;
    const int64_t in = row * 2 * cols + col;
    float g[W], x[W], u[W], dg[W], du[W];
    load<T, W>(grad_out + row * cols + col, g);
    load<T, W>(gate_up + in, x);
    load<T, W>(gate_up + in + cols, u);
#pragma unroll
    for (int i = 0; i < W; ++i) {
      const float sig = sigmoid(x[i]);
      dg[i] = round_to<T>(g[i] * u[i]) * sig * (1.0f + x[i] * (1.0f - sig));
      du[i] = g[i] * round_to<T>(silu(x[i]));
    }
    store<T, W>(grad_gate_up + in, dg);
    store<T, W>(grad_gate_up + in + cols, du);
  }
}

// Enough blocks to fill the GPU several times over; the loops stride over the rest.
unsigned blocks_for(int64_t packs) {
  const int64_t wanted = (packs + kThreads - 1) / kThreads;
  return static_cast<unsigned>(wanted < 65536 ? wanted : 65536);
}

}  // namespace

namespace launch {

void swiglu_forward(Dtype dtype, const void* gate_up, void* out, int64_t rows, int64_t cols, Stream stream) {
  if (rows * cols == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int W = host::pack_width<T>;
    const auto* in = static_cast<const T*>(gate_up);
    auto* o = static_cast<T*>(out);
    const auto s = host::as_cuda(stream);
    if (cols % W == 0 && host::aligned(in, 16) && host::aligned(o, 16))
      forward_kernel<T, W><<<blocks_for(rows * cols / W), kThreads, 0, s>>>(in, o, rows, cols);
    else
      forward_kernel<T, 1><<<blocks_for(rows * cols), kThreads, 0, s>>>(in, o, rows, cols);
  });
  host::check_launch("swiglu_forward");
}

void swiglu_backward(Dtype dtype, const void* grad_out, const void* gate_up, void* grad_gate_up, int64_t rows,
                     int64_t cols, Stream stream) {
  if (rows * cols == 0) return;
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int W = host::pack_width<T>;
    const auto* g = static_cast<const T*>(grad_out);
    const auto* in = static_cast<const T*>(gate_up);
    auto* d = static_cast<T*>(grad_gate_up);
    const auto s = host::as_cuda(stream);
    if (cols % W == 0 && host::aligned(g, 16) && host::aligned(in, 16) && host::aligned(d, 16))
      backward_kernel<T, W><<<blocks_for(rows * cols / W), kThreads, 0, s>>>(g, in, d, rows, cols);
    else
      backward_kernel<T, 1><<<blocks_for(rows * cols), kThreads, 0, s>>>(g, in, d, rows, cols);
  });
  host::check_launch("swiglu_backward");
}

}  // namespace launch

}  // namespace strata::kernels
