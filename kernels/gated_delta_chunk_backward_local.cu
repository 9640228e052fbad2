// The chunked gated delta rule's backward, first pass (see gated_delta_chunk_backward.cuh): what
// each chunk's reverse state step needs that depends on no state. One block of 8 warps per (row,
// head, chunk):
//   dv_local = P^T dO,  P_ij = (q_i . k_j) exp(G_i - G_j) for j <= i, else 0   (tensor cores)
// into d_delta (bfloat16), and exp(G) q and dO as bfloat16 chunk arrays (zero rows past the
// chunk) that the states pass copies asynchronously.
#include "gated_delta_chunk_backward.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <int kKeyDim, int kValueDim>
struct LocalLayout {
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kValueStride = bf16_stride<kValueDim>;
  static constexpr int kScoreStride = float_stride<kChunk>, kScore16Stride = bf16_stride<kChunk>;
  static constexpr int kOutStride = float_stride<kValueDim>;
  static constexpr int queries = 0;
  static constexpr int keys = queries + aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int d_out = keys + aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int scores = d_out + aligned_bytes(kChunk * kValueStride * 2);      // q k^T, float32
  static constexpr int scores16 = scores + aligned_bytes(kChunk * kScoreStride * 4);   // P, bfloat16
  static constexpr int local = scores16 + aligned_bytes(kChunk * kScore16Stride * 2);  // P^T dO, float32
  static constexpr int gates = local + aligned_bytes(kChunk * kOutStride * 4);
  static constexpr int bytes = gates + aligned_bytes(kChunk * 4);
};

template <class QK, class V, int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads, 2) backward_local_kernel(BackwardProblem p) {
  using L = LocalLayout<kKeyDim, kValueDim>;
  const auto& in = p.forward.in;
  const int c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const ChunkSpan span = chunk_span(in, c);
  const int64_t chunk_index = (static_cast<int64_t>(b) * in.heads + h) * in.chunks + c;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* queries = reinterpret_cast<bf16*>(shared + L::queries);
  auto* keys = reinterpret_cast<bf16*>(shared + L::keys);
  auto* d_out = reinterpret_cast<bf16*>(shared + L::d_out);
  auto* scores = reinterpret_cast<float*>(shared + L::scores);
  auto* scores16 = reinterpret_cast<bf16*>(shared + L::scores16);
  auto* local = reinterpret_cast<float*>(shared + L::local);
  auto* gates = reinterpret_cast<float*>(shared + L::gates);

  const auto* q_head = static_cast<const QK*>(in.q) + b * in.q_strides.batch +
                       static_cast<int64_t>(span.first) * in.q_strides.seq + h * in.q_strides.head;
  const auto* k_head = static_cast<const QK*>(in.k) + b * in.k_strides.batch +
                       static_cast<int64_t>(span.first) * in.k_strides.seq + h * in.k_strides.head;
  const auto& ds = p.in.d_out_strides;
  const auto* do_head =
      static_cast<const V*>(p.in.d_out) + b * ds.batch + static_cast<int64_t>(span.first) * ds.seq + h * ds.head;
  stage_rows<QK, kKeyDim, kThreads>(q_head, in.q_strides.seq, span.length, queries);
  stage_rows<QK, kKeyDim, kThreads>(k_head, in.k_strides.seq, span.length, keys);
  stage_rows<V, kValueDim, kThreads>(do_head, ds.seq, span.length, d_out);
  if (threadIdx.x < kChunk) gates[threadIdx.x] = p.forward.gates[chunk_index * kChunk + threadIdx.x];
  staged_rows_wait();
  __syncthreads();

  product<false, true, kWarps>(scores, L::kScoreStride, queries, L::kKeyStride, keys, L::kKeyStride, kChunk, kChunk,
                               kKeyDim, Structure::lower_output);
  // Meanwhile (nothing writes q or dO in shared memory) their chunk arrays out.
  for (int e = threadIdx.x; e < kChunk * kKeyDim / 8; e += kThreads) {
    const int i = e / (kKeyDim / 8), column = (e % (kKeyDim / 8)) * 8;
    float x[8];
    device::load<bf16, 8>(queries + i * L::kKeyStride + column, x);
    const float scale = __expf(gates[i]);
#pragma unroll
    for (int m = 0; m < 8; ++m) x[m] *= scale;
    device::store<bf16, 8>(p.queries + (chunk_index * kChunk + i) * kKeyDim + column, x);
  }
  for (int e = threadIdx.x; e < kChunk * kValueDim / 8; e += kThreads) {
    const int i = e / (kValueDim / 8), column = (e % (kValueDim / 8)) * 8;
    *reinterpret_cast<uint4*>(p.d_out + (chunk_index * kChunk + i) * kValueDim + column) =
        *reinterpret_cast<const uint4*>(d_out + i * L::kValueStride + column);
  }
  __syncthreads();
  gated_causal_scores<kThreads, L::kScoreStride, L::kScore16Stride>(scores, gates, scores16);
  __syncthreads();
  product<true, false, kWarps>(local, L::kOutStride, scores16, L::kScore16Stride, d_out, L::kValueStride, kChunk,
                               kValueDim, kChunk, Structure::upper_a);  // P^T
  __syncthreads();
  for (int e = threadIdx.x; e < kChunk * kValueDim / 8; e += kThreads) {
    const int i = e / (kValueDim / 8), column = (e % (kValueDim / 8)) * 8;
    float x[8];
#pragma unroll
    for (int m = 0; m < 8; ++m) x[m] = local[i * L::kOutStride + column + m];
    device::store<bf16, 8>(p.d_delta + (chunk_index * kChunk + i) * kValueDim + column, x);
  }
}

}  // namespace

void launch_backward_local(const BackwardProblem& p, cudaStream_t stream) {
  const auto& in = p.forward.in;
  const dim3 grid(static_cast<unsigned>(in.chunks), static_cast<unsigned>(in.heads), static_cast<unsigned>(in.batch));
  const auto kernel_of = [](auto qk_tag, auto v_tag) {
    return backward_local_kernel<typename decltype(qk_tag)::type, typename decltype(v_tag)::type, 128, 128>;
  };
  launch_for_dtypes(in, kernel_of, grid, kThreads, LocalLayout<128, 128>::bytes, stream, p);
  host::check_launch("gated_delta_chunk_backward (local)");
}

}  // namespace strata::kernels::gdn
