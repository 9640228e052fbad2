// A CPU emulation of the CUDA subset the fused gated delta rule kernels use, so that their logic
// (indices, phases, formulas) can be checked on a machine without a GPU: each block runs as one
// std::thread per CUDA thread (blocks one after another, sharing one shared-memory buffer),
// __syncthreads, __syncwarp and bar.sync's named barriers are std::barriers, shuffles go through a
// per-warp exchange array, and cp.async copies at once. mma.sync, ldmatrix and stmatrix are in mma_fragments.cuh beside
// this file. Not emulated: alignment rules, shared memory limits, register pressure, timing, and
// races that real hardware would expose. Included first (-include) into the kernels compiled as
// C++ by run.sh; device memory is host memory.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct EmuDim {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local EmuDim emu_thread;  // threadIdx
inline EmuDim emu_block;
#define threadIdx emu_thread
#define blockIdx emu_block
alignas(128) inline unsigned char emu_shared[240000];
inline std::unique_ptr<std::barrier<>> emu_block_barrier;
inline std::unique_ptr<std::barrier<>> emu_warp_barrier[32];
inline float emu_exchange[32][32];
// bar.sync id, count (__barrier_sync_count): barrier `id` (1 .. 15; 0 is __syncthreads') waits for
// `count` threads, whole warps, and only for those: the warps that call it with that id. Made at a
// block's first call with the id, for the count that call gives; a later call with another count
// is an error, as on the GPU.
inline std::unique_ptr<std::barrier<>> emu_named_barrier[16];
inline unsigned emu_named_count[16];
inline std::mutex emu_named_mutex;

inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu_warp_barrier[threadIdx.x / 32]->arrive_and_wait(); }
inline void __barrier_sync_count(unsigned id, unsigned count) {
  std::barrier<>* named;
  {
    const std::lock_guard<std::mutex> lock(emu_named_mutex);
    if (id == 0 || id >= 16 || count == 0 || count % 32 != 0) {
      std::fprintf(stderr, "emulation: bar.sync %u, %u: expected an id in 1..15 and a count of whole warps\n", id,
                   count);
      std::abort();
    }
    if (emu_named_barrier[id] == nullptr) {
      emu_named_barrier[id] = std::make_unique<std::barrier<>>(count);
      emu_named_count[id] = count;
    } else if (emu_named_count[id] != count) {
      std::fprintf(stderr, "emulation: bar.sync %u, %u after bar.sync %u, %u in the same block\n", id, count, id,
                   emu_named_count[id]);
      std::abort();
    }
    named = emu_named_barrier[id].get();
  }
  named->arrive_and_wait();
}
template <class T>
T emu_shuffle(T v, int source, bool valid) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  static_assert(sizeof(T) == 4);
  std::memcpy(&emu_exchange[warp][lane], &v, 4);
  __syncwarp();
  T r = v;
  if (valid) std::memcpy(&r, &emu_exchange[warp][source], 4);
  __syncwarp();
  return r;
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int m) {
  int l = threadIdx.x % 32;
  return emu_shuffle(v, l ^ m, true);
}
template <class T>
T __shfl_up_sync(unsigned, T v, int d) {
  int l = threadIdx.x % 32;
  return emu_shuffle(v, l - d, l >= d);
}
template <class T>
T __shfl_down_sync(unsigned, T v, int d) {
  int l = threadIdx.x % 32;
  return emu_shuffle(v, l + d, l + d < 32);
}
inline float __expf(float x) { return std::exp(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline int min(int a, int b) { return a < b ? a : b; }
inline void __pipeline_memcpy_async(void* d, const void* s, size_t n) { std::memcpy(d, s, n); }
inline void __pipeline_commit() {}
inline void __pipeline_wait_prior(int) {}

namespace emu {
template <class F>
void launch(dim3 grid, int threads, F body) {
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        emu_block = {x, y, z};
        std::memset(emu_shared, 0xff, sizeof emu_shared);  // NaN everywhere: a read of unwritten memory shows
        emu_block_barrier = std::make_unique<std::barrier<>>(threads);
        for (int w = 0; w < threads / 32; ++w) emu_warp_barrier[w] = std::make_unique<std::barrier<>>(32);
        for (auto& named : emu_named_barrier) named.reset();
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
          pool.emplace_back([t, &body] {
            emu_thread = {static_cast<unsigned>(t), 0, 0};
            body();
          });
        for (auto& t : pool) t.join();
      }
}
}  // namespace emu

inline cudaError_t emu_malloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
  std::memset(*p, 0xff, (n + 255) / 256 * 256);
  return cudaSuccess;
}
#define cudaMalloc(pp, n) emu_malloc(reinterpret_cast<void**>(pp), (n))
#define cudaMemcpy(d, s, n, k) (std::memcpy((d), (s), (n)), cudaSuccess)
#define cudaFree(p) (std::free(p), cudaSuccess)
#define cudaDeviceSynchronize() cudaSuccess
#define cudaGetDeviceCount(n) (*(n) = 1, cudaSuccess)
#define cudaGetLastError() cudaSuccess
#define cudaFuncSetAttribute(...) cudaSuccess
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __shared__
#define __shared__
