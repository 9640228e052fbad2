#pragma once
// What the kernels in this folder share: float32 <-> storage dtype conversions (round to nearest
// even, as ATen rounds), vector loads of 16 bytes, warp/block sums, the dtype switch and the
// launch check. Only CUDA headers: no LibTorch here, so each .cu compiles in seconds.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "strata/core/error.h"
#include "strata/kernels/launch.h"

namespace strata::kernels::device {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// v as the ATen twin sees it after storing it in T.
template <class T>
__device__ __forceinline__ float round_to(float v) {
  return to_float(from_float<T>(v));
}

// N consecutive values of T moved as one aligned access (N * sizeof(T) bytes).
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <class T, int N>
__device__ __forceinline__ void load(const T* p, float (&out)[N]) {
  const auto pack = *reinterpret_cast<const Pack<T, N>*>(p);
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = to_float(pack.v[i]);
}

template <class T, int N>
__device__ __forceinline__ void store(T* p, const float (&in)[N]) {
  Pack<T, N> pack;
#pragma unroll
  for (int i = 0; i < N; ++i) pack.v[i] = from_float<T>(in[i]);
  *reinterpret_cast<Pack<T, N>*>(p) = pack;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over a block of kThreads threads, returned to every thread. `scratch` holds kThreads / 32
// floats; a second call with the same scratch must follow a __syncthreads().
template <int kThreads>
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024);
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < kThreads / 32 ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

}  // namespace strata::kernels::device

namespace strata::kernels::host {

template <class T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) with T the storage type of `dtype`.
template <class F>
void dispatch(launch::Dtype dtype, F&& f) {
  switch (dtype) {
    case launch::Dtype::Float32: return f(Tag<float>{});
    case launch::Dtype::BFloat16: return f(Tag<__nv_bfloat16>{});
    case launch::Dtype::Float16: return f(Tag<__half>{});
  }
  fail("strata kernels: unknown dtype code ", static_cast<int>(dtype));
}

// Calls f(Tag<X>{}, Tag<Y>{}) for an input dtype X and an output dtype Y that is X or float32.
template <class F>
void dispatch_in_out(launch::Dtype in, launch::Dtype out, const char* what, F&& f) {
  dispatch(in, [&](auto in_tag) {
    if (out == in) return f(in_tag, in_tag);
    if (out == launch::Dtype::Float32) return f(in_tag, Tag<float>{});
    fail(what, ": output dtype code ", static_cast<int>(out), " is neither the input's (", static_cast<int>(in),
         ") nor float32");
  });
}

// Calls f(std::integral_constant<int, N>{}) for a number of mHC residual streams n in
// 1..kMaxHyperStreams, so that per-token loops over streams unroll into registers.
template <class F>
void dispatch_streams(int64_t n, const char* what, F&& f) {
  switch (n) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 8: return f(std::integral_constant<int, 8>{});
  }
  fail(what, ": n is ", n, ", expected 1..", launch::kMaxHyperStreams);
}

// Elements of T in one 16-byte access.
template <class T>
constexpr int pack_width = 16 / sizeof(T);

// Whether p can be read as packs of `bytes` (a power of two).
inline bool aligned(const void* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

inline void check_launch(const char* what) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) fail(what, ": CUDA kernel launch failed: ", cudaGetErrorString(error));
}

inline cudaStream_t as_cuda(launch::Stream stream) { return static_cast<cudaStream_t>(stream); }

}  // namespace strata::kernels::host
