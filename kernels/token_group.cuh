#pragma once
// mHC's per-token layout, shared by kernels/hyper_connection.cu and kernels/hc_boundary.cu: a
// group of kTokenThreads threads per token (kTokensPerBlock tokens a block of kThreads). The
// token's maps (n weights, the n x n residual matrix) sit in registers, the group strides over
// `hidden`, and per-token sums over hidden end in a fixed-order reduction (deterministic).
#include "common.cuh"
#include "strata/core/error.h"

namespace strata::kernels::device {

constexpr int kThreads = 256;

constexpr int kTokenThreads = 64;
constexpr int kTokensPerBlock = kThreads / kTokenThreads;
constexpr int kWarpsPerToken = kTokenThreads / 32;

struct TokenSlot {
  int64_t token;  // this thread's token
  int slot;       // its group in the block
  int thread;     // its index in the group
  bool active;    // false past the last token (the thread still joins the block's syncs)
};

__device__ __forceinline__ TokenSlot token_slot(int64_t tokens) {
  const int slot = threadIdx.x / kTokenThreads;
  const int64_t token = static_cast<int64_t>(blockIdx.x) * kTokensPerBlock + slot;
  return {token, slot, static_cast<int>(threadIdx.x % kTokenThreads), token < tokens};
}

// Sums each of the K per-thread values over the token's group and hands (i, sum) to `store` on
// one thread each: warp shuffles, then the group's warps in a fixed order. Every thread of the
// block must call it.
template <int K, class Store>
__device__ __forceinline__ void token_sums(const TokenSlot& at, float (&v)[K], Store&& store) {
  __shared__ float partial[kTokensPerBlock][kWarpsPerToken][K];
  const int warp = at.thread / 32, lane = at.thread % 32;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const float s = warp_sum(v[i]);
    if (lane == 0) partial[at.slot][warp][i] = s;
  }
  __syncthreads();
  if (!at.active) return;
  for (int i = at.thread; i < K; i += kTokenThreads) {
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarpsPerToken; ++w) s += partial[at.slot][w][i];
    store(i, s);
  }
}

}  // namespace strata::kernels::device

namespace strata::kernels::host {

// kTokensPerBlock tokens a block; grids of more than 2^31 - 1 blocks are refused, not truncated.
inline unsigned token_blocks(int64_t tokens, const char* what) {
  const int64_t blocks = (tokens + device::kTokensPerBlock - 1) / device::kTokensPerBlock;
  if (blocks > 0x7fffffff) fail(what, ": ", tokens, " tokens, more than one launch takes");
  return static_cast<unsigned>(blocks);
}

}  // namespace strata::kernels::host
