#pragma once
// What the standalone checks of the fused chunked gated delta rule share (bench/gdn_fused_check.cu,
// bench/gdn_fused_backward_check.cu): random inputs as the layer hands them over, their device
// copies and the forward's arguments, relative errors and CUDA-event timing. CUDA only, no LibTorch.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gated_delta_chunk.cuh"

namespace {

using strata::kernels::launch::Dtype;
using strata::kernels::launch::GatedDeltaChunkForward;
namespace launch = strata::kernels::launch;
namespace gdn = strata::kernels::gdn;

constexpr int kDim = 128;  // Dk = Dv

#define CHECK_CUDA(call)                                                                  \
  do {                                                                                    \
    const cudaError_t error = (call);                                                     \
    if (error != cudaSuccess) {                                                           \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(error)); \
      std::exit(2);                                                                       \
    }                                                                                     \
  } while (0)

// bfloat16 rounding on the host (round to nearest even), so the reference sees the kernel's inputs.
float bf16_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// Inputs as the layer hands them over: unit-norm k, unit-norm q over sqrt(Dk), all rounded to
// bfloat16; g and beta float32 [B, T, H]. q and k are held per value head; with key_heads < heads,
// value heads h r .. h r + r - 1 (r = heads / key_heads) hold the same rows, and the kernels are
// handed key head h's once.
struct Inputs {
  int batch, seq, heads, key_heads;
  std::vector<float> q, k, v, g, beta, initial;  // initial empty: zeros
  std::vector<int64_t> bounds;                   // packed documents' cu_seqlens, empty for none
};

Inputs random_inputs(int batch, int seq, int heads, double gate_scale, double beta_shift, bool initial,
                     std::vector<int64_t> bounds, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Inputs in{batch, seq, heads, heads};
  const size_t rows = static_cast<size_t>(batch) * seq * heads;
  auto unit_rows = [&](float scale) {
    std::vector<float> x(rows * kDim);
    for (size_t r = 0; r < rows; ++r) {
      double norm = 0;
      for (int d = 0; d < kDim; ++d) norm += std::pow(x[r * kDim + d] = normal(rng), 2);
      for (int d = 0; d < kDim; ++d) x[r * kDim + d] = bf16_round(x[r * kDim + d] / std::sqrt(norm) * scale);
    }
    return x;
  };
  in.q = unit_rows(1.0f / std::sqrt(static_cast<float>(kDim)));
  in.k = unit_rows(1.0f);
  in.v.resize(rows * kDim);
  for (auto& x : in.v) x = bf16_round(normal(rng));
  in.g.resize(rows);
  in.beta.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    in.g[r] = static_cast<float>(-gate_scale * std::exp(0.5 * normal(rng)));
    in.beta[r] = static_cast<float>(1.0 / (1.0 + std::exp(-(normal(rng) + beta_shift))));
  }
  const int states = bounds.empty() ? batch : static_cast<int>(bounds.size()) - 1;
  if (initial) {
    in.initial.resize(static_cast<size_t>(states) * heads * kDim * kDim);
    for (auto& x : in.initial) x = 0.1f * normal(rng);
  }
  in.bounds = std::move(bounds);
  return in;
}

// in with each group of heads / key_heads value heads sharing the first one's q and k.
Inputs sharing_key_heads(Inputs in, int key_heads) {
  const int per_key = in.heads / key_heads;
  for (size_t token = 0; token < static_cast<size_t>(in.batch) * in.seq; ++token)
    for (int h = 0; h < in.heads; ++h)
      for (auto* x : {&in.q, &in.k})
        std::copy_n(x->begin() + (token * in.heads + h / per_key * per_key) * kDim, kDim,
                    x->begin() + (token * in.heads + h) * kDim);
  in.key_heads = key_heads;
  return in;
}

// The key heads' rows of q or k held per value head ([B, T, key_heads, kDim]).
std::vector<float> key_head_rows(const Inputs& in, const std::vector<float>& x) {
  const int per_key = in.heads / in.key_heads;
  std::vector<float> rows;
  rows.reserve(x.size() / per_key);
  for (size_t token = 0; token < static_cast<size_t>(in.batch) * in.seq; ++token)
    for (int h = 0; h < in.heads; h += per_key)
      rows.insert(rows.end(), x.begin() + (token * in.heads + h) * kDim, x.begin() + (token * in.heads + h + 1) * kDim);
  return rows;
}

template <class T>
T* to_device(const std::vector<T>& host) {
  T* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(host.size(), 1) * sizeof(T)));
  if (!host.empty()) CHECK_CUDA(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& x) {
  std::vector<__nv_bfloat16> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = __float2bfloat16_rn(x[i]);
  return y;
}

// Device copies of the inputs and the arguments of one forward (q and k in bfloat16 or float32).
struct DeviceRun {
  GatedDeltaChunkForward args{};
  std::vector<void*> owned;

  DeviceRun(const Inputs& in, bool float_qk) {
    const int64_t B = in.batch, T = in.seq, H = in.heads, Hk = in.key_heads;
    args.qk_dtype = float_qk ? Dtype::Float32 : Dtype::BFloat16;
    args.v_dtype = Dtype::BFloat16;
    const auto q = key_head_rows(in, in.q), k = key_head_rows(in, in.k);
    args.q = keep(float_qk ? static_cast<void*>(to_device(q)) : to_device(to_bf16(q)));
    args.k = keep(float_qk ? static_cast<void*>(to_device(k)) : to_device(to_bf16(k)));
    args.v = keep(to_device(to_bf16(in.v)));
    args.q_strides = args.k_strides = launch::RowStrides{T * Hk * kDim, Hk * kDim, kDim};
    args.v_strides = launch::RowStrides{T * H * kDim, H * kDim, kDim};
    args.g = keep(to_device(in.g));
    args.g_dtype = Dtype::Float32;
    args.beta = keep(to_device(in.beta));
    args.beta_dtype = Dtype::Float32;
    args.initial_state = in.initial.empty() ? nullptr : static_cast<const float*>(keep(to_device(in.initial)));
    args.batch = B;
    args.seq = T;
    args.heads = H;
    args.key_heads = Hk;
    args.key_dim = args.value_dim = kDim;
    if (in.bounds.empty()) {
      args.chunks = (T + gdn::kChunk - 1) / gdn::kChunk;
      args.segments = B;
    } else {
      std::vector<int> tokens, segment_chunks{0};
      for (size_t d = 0; d + 1 < in.bounds.size(); ++d) {
        for (int64_t t = in.bounds[d]; t < in.bounds[d + 1]; t += gdn::kChunk) {
          tokens.push_back(static_cast<int>(t));
          tokens.push_back(static_cast<int>(std::min<int64_t>(gdn::kChunk, in.bounds[d + 1] - t)));
        }
        segment_chunks.push_back(static_cast<int>(tokens.size() / 2));
      }
      args.chunks = segment_chunks.back();
      args.segments = static_cast<int64_t>(segment_chunks.size()) - 1;
      args.chunk_tokens = static_cast<const int*>(keep(to_device(tokens)));
      args.segment_chunks = static_cast<const int*>(keep(to_device(segment_chunks)));
    }
    args.out = keep(alloc(B * T * H * kDim * 2));
    args.final_state = static_cast<float*>(keep(alloc(args.segments * H * kDim * kDim * 4)));
    args.workspace = keep(alloc(launch::gated_delta_chunk_workspace_bytes(B, H, args.chunks, kDim, kDim)));
  }
  ~DeviceRun() {
    for (void* p : owned) cudaFree(p);
  }
  void* keep(void* p) {
    owned.push_back(p);
    return p;
  }
  static void* alloc(int64_t bytes) {
    void* p = nullptr;
    CHECK_CUDA(cudaMalloc(&p, bytes));
    return p;
  }
};

double relative_error(const std::vector<double>& got, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

// bfloat16 inputs, intermediates (T, W, U, the entering states, the corrections) and output each
// round to 8 significant bits (relative 2^-9 = 2e-3); a few such roundings compound, so 2e-2
// relative (Frobenius) separates rounding from a wrong formula, which is off by O(1).
constexpr double kTolerance = 2e-2;

// Copies n values of a device array (float32 or bfloat16) to float64.
template <class T>
std::vector<double> fetch(const T* device, size_t n) {
  std::vector<T> host(n);
  CHECK_CUDA(cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    if constexpr (sizeof(T) == 2)
      out[i] = __bfloat162float(host[i]);
    else
      out[i] = host[i];
  }
  return out;
}

// Median milliseconds of `fn` over 20 runs after 3, timed with CUDA events.
template <class F>
double median_ms(F&& fn) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) fn();
  std::vector<float> ms;
  for (int i = 0; i < 20; ++i) {
    CHECK_CUDA(cudaEventRecord(start));
    fn();
    CHECK_CUDA(cudaEventRecord(stop));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float t = 0;
    CHECK_CUDA(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace
