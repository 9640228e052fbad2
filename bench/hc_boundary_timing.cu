// Standalone timings of the mHC boundary's CUDA kernels (kernels/hc_boundary*.cu) without
// LibTorch: random inputs on the GPU, each launcher 5 warm-up and 30 timed calls (cudaEvent,
// median), n = 4 at the dense benchmark's shape (16384 tokens of hidden 1024) and the wide one's
// (4096 of 4096), bfloat16 streams. A kernel variant is timed by linking its file instead of the
// tree's: a device call of seconds where a LibTorch build takes minutes. Build and run from the
// repository root:
//   nvcc -std=c++20 -O3 -arch=sm_90 -I include -I kernels bench/hc_boundary_timing.cu \
//     kernels/hc_boundary.cu kernels/hc_boundary_forward.cu -o /tmp/hc_boundary_timing && /tmp/hc_boundary_timing
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <utility>
#include <vector>

#include "strata/kernels/hc_boundary_launch.h"

namespace {

using namespace strata::kernels::launch;

// Values in [lo, hi) from a hash of the index: the timings need no particular distribution.
__device__ float hashed(int64_t i, uint32_t seed, float lo, float hi) {
  uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed;
  x ^= x >> 13;
  x *= 0x5bd1e995u;
  x ^= x >> 15;
  return lo + (hi - lo) * static_cast<float>(x & 0xffff) / 65536.0f;
}

template <class T>
__global__ void fill(T* p, int64_t count, float lo, float hi, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x)
    p[i] = static_cast<T>(hashed(i, seed, lo, hi));
}

// A device array of `count` values filled in [lo, hi); freed at exit.
template <class T>
T* random_array(int64_t count, float lo, float hi) {
  static uint32_t seed = 1;
  void* p = nullptr;
  if (cudaMalloc(&p, count * sizeof(T)) != cudaSuccess) {
    std::fprintf(stderr, "cudaMalloc of %lld bytes failed\n", static_cast<long long>(count * sizeof(T)));
    std::exit(1);
  }
  fill<<<1024, 256>>>(static_cast<T*>(p), count, lo, hi, seed++);
  return static_cast<T*>(p);
}

template <class F>
double median_ms(F&& launch) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < 5; ++i) launch();
  std::vector<float> ms;
  for (int i = 0; i < 30; ++i) {
    cudaEventRecord(start);
    launch();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main() {
  const int64_t n = 4, M = 2 * n + n * n;
  const auto bf = Dtype::BFloat16;
  for (const auto& [T, H] : {std::pair<int64_t, int64_t>{16384, 1024}, {4096, 4096}}) {
    auto* streams = random_array<__nv_bfloat16>(T * n * H, -2, 2);
    auto* branch = random_array<__nv_bfloat16>(T * H, -1, 1);
    auto* fn = random_array<__nv_bfloat16>(M * n * H, -0.05f, 0.05f);
    auto* grad_new = random_array<__nv_bfloat16>(T * n * H, -1, 1);
    auto* grad_input = random_array<__nv_bfloat16>(T * H, -1, 1);
    auto* product = random_array<__nv_bfloat16>(T * n * H, -0.1f, 0.1f);
    auto* post = random_array<float>(T * n, 0, 2);
    auto* res = random_array<float>(T * n * n, 0, 0.5f);
    auto* base = random_array<float>(M, -0.5f, 0.5f);
    auto* scale = random_array<float>(3, 0.5f, 1.5f);
    auto* grad_f = random_array<float>(T * M, -1, 1);
    auto* new_streams = random_array<__nv_bfloat16>(T * n * H, 0, 0);
    auto* next_input = random_array<__nv_bfloat16>(T * H, 0, 0);
    auto* a = random_array<__nv_bfloat16>(T * M, 0, 0);
    auto* grad_streams = random_array<__nv_bfloat16>(T * n * H, 0, 0);
    auto* grad_branch = random_array<__nv_bfloat16>(T * H, 0, 0);
    auto *f = random_array<float>(T * M, 0, 0), *rstd = random_array<float>(T, 0, 0), *c = random_array<float>(T, 0, 0),
         *pre = random_array<float>(T * n, 0, 0), *grad_logit = random_array<float>(T * n, 0, 0),
         *grad_logit_f = random_array<float>(T * n, 0, 0), *grad_post = random_array<float>(T * n, 0, 0),
         *grad_res = random_array<float>(T * n * n, 0, 0), *grad_base = random_array<float>(M, 0, 0),
         *grad_scale = random_array<float>(3, 0, 0);
    const double forward = median_ms([&] {
      hc_boundary_forward(streams, branch, post, res, fn, base, scale, 1e-6f, 1e-6f, new_streams, next_input, f, rstd,
                          T, n, H, nullptr);
    });
    const double projection_grad = median_ms([&] {
      hc_boundary_projection_grad(bf, grad_input, new_streams, f, grad_f, rstd, base, scale, 1e-6f, a, c, pre,
                                  grad_logit, grad_logit_f, T, n, H, nullptr);
    });
    const double bias_grads = median_ms(
        [&] { hc_boundary_bias_grads(grad_logit, grad_logit_f, T, n, grad_base, grad_scale, nullptr); });
    const double backward = median_ms([&] {
      hc_boundary_backward(bf, grad_new, grad_input, pre, product, c, new_streams, streams, branch, post, res,
                           grad_streams, grad_branch, grad_post, grad_res, T, n, H, nullptr);
    });
    const cudaError_t error = cudaDeviceSynchronize();
    std::printf("n %lld, %lld tokens of hidden %lld, ms a call: forward %.4f, projection grad %.4f, bias grads %.4f, "
                "backward (given cuBLAS's product) %.4f [%s]\n",
                static_cast<long long>(n), static_cast<long long>(T), static_cast<long long>(H), forward,
                projection_grad, bias_grads, backward, cudaGetErrorString(error));
  }
  return 0;
}
