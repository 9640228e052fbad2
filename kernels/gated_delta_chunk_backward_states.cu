// The chunked gated delta rule's backward, sequential pass (see gated_delta_chunk_backward.cuh):
// for each chunk in reverse, with dH the gradient of the state leaving it,
//   d_states[c] = dH (bfloat16);   d_delta = dv_local + k_to_end dH (overwrites dv_local, bfloat16);
//   dH = exp(G_last) dH + (exp(G) q)^T dO - W^T d_delta,
// which leaves dH = dL/d(initial state). The forward's states pass run backwards: value columns
// never mix, so a block owns one (segment, head) and kColumns value columns, its 8 warps hold dH
// (key_dim x kColumns, float32) in wmma accumulators, and each chunk's W, k_to_end, exp(G) q and
// slices of dO and dv_local are copied into shared memory one chunk ahead (two buffers).
#include <cuda_pipeline.h>

#include "gated_delta_chunk_backward.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kColumns = 32;  // value columns per block
constexpr int kColumnTiles = kColumns / kTile;
static_assert(kChunk / kTile * kColumnTiles == kWarps, "each warp computes one tile of k_to_end dH");

template <int kKeyDim>
struct BackwardStatesLayout {
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kSliceStride = bf16_stride<kColumns>;
  static constexpr int kFloatStride = float_stride<kColumns>;
  static constexpr int kKeyBuffer = aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int kSliceBuffer = aligned_bytes(kChunk * kSliceStride * 2);
  static constexpr int w = 0;                                // [2][kChunk][kKeyStride]
  static constexpr int k_to_end = w + 2 * kKeyBuffer;        // [2][kChunk][kKeyStride]
  static constexpr int queries = k_to_end + 2 * kKeyBuffer;  // [2][kChunk][kKeyStride]: exp(G) q
  static constexpr int d_out = queries + 2 * kKeyBuffer;     // [2][kChunk][kSliceStride]
  static constexpr int local = d_out + 2 * kSliceBuffer;     // [2][kChunk][kSliceStride]: dv_local
  static constexpr int state = local + 2 * kSliceBuffer;     // dH, float32 [kKeyDim][kFloatStride]
  static constexpr int state16 = state + aligned_bytes(kKeyDim * kFloatStride * 4);         // dH, bfloat16
  static constexpr int product = state16 + aligned_bytes(kKeyDim * kSliceStride * 2);       // k_to_end dH, float32
  static constexpr int minus_d_delta = product + aligned_bytes(kChunk * kFloatStride * 4);  // bfloat16
  static constexpr int bytes = minus_d_delta + kSliceBuffer;
};

template <int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads) backward_states_kernel(BackwardProblem p) {
  using namespace nvcuda;
  using L = BackwardStatesLayout<kKeyDim>;
  using Slice = StateSlice<kKeyDim, kValueDim, kColumns, kWarps, L::kFloatStride>;  // dH
  constexpr int kRowTiles = Slice::kRowTiles, kRows = Slice::kRows;
  const auto& in = p.forward.in;
  const int column0 = blockIdx.x * kColumns, h = blockIdx.y, segment = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const SegmentChunks chunks = segment_chunks(in, segment, h);
  const int64_t chunk0 = chunks.chunk0;
  const int count = chunks.count;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* w_buffers = reinterpret_cast<bf16*>(shared + L::w);
  auto* k_buffers = reinterpret_cast<bf16*>(shared + L::k_to_end);
  auto* q_buffers = reinterpret_cast<bf16*>(shared + L::queries);
  auto* do_buffers = reinterpret_cast<bf16*>(shared + L::d_out);
  auto* local_buffers = reinterpret_cast<bf16*>(shared + L::local);
  auto* state = reinterpret_cast<float*>(shared + L::state);
  auto* state16 = reinterpret_cast<bf16*>(shared + L::state16);
  auto* product = reinterpret_cast<float*>(shared + L::product);
  auto* minus_d_delta = reinterpret_cast<bf16*>(shared + L::minus_d_delta);
  constexpr int kKeyElements = L::kKeyBuffer / 2, kSliceElements = L::kSliceBuffer / 2;

  // Chunk `step`'s arrays into buffer `buffer`, as one commit group.
  const auto prefetch = [&](int step, int buffer) {
    const int64_t n = chunk0 + step;
    const bf16* keyed[3] = {p.forward.w + n * kChunk * kKeyDim, p.forward.k_to_end + n * kChunk * kKeyDim,
                            p.queries + n * kChunk * kKeyDim};
    bf16* keyed_to[3] = {w_buffers, k_buffers, q_buffers};
    for (int e = threadIdx.x; e < kChunk * kKeyDim / 8; e += kThreads) {
      const int row = e / (kKeyDim / 8), column = (e % (kKeyDim / 8)) * 8;
#pragma unroll
      for (int a = 0; a < 3; ++a)
        __pipeline_memcpy_async(keyed_to[a] + buffer * kKeyElements + row * L::kKeyStride + column,
                                keyed[a] + row * kKeyDim + column, 16);
    }
    const bf16* d_out = p.d_out + n * kChunk * kValueDim + column0;
    const bf16* local = p.d_delta + n * kChunk * kValueDim + column0;
    for (int e = threadIdx.x; e < kChunk * kColumns / 8; e += kThreads) {
      const int row = e / (kColumns / 8), column = (e % (kColumns / 8)) * 8;
      __pipeline_memcpy_async(do_buffers + buffer * kSliceElements + row * L::kSliceStride + column,
                              d_out + row * kValueDim + column, 16);
      __pipeline_memcpy_async(local_buffers + buffer * kSliceElements + row * L::kSliceStride + column,
                              local + row * kValueDim + column, 16);
    }
    __pipeline_commit();
  };
  if (count > 0) prefetch(count - 1, 0);

  // dH from d_final_state (zeros without one).
  const int64_t state_offset = (static_cast<int64_t>(segment) * in.heads + h) * kKeyDim * kValueDim + column0;
  Slice::read(p.in.d_final_state, state_offset, state);
  __syncthreads();
  typename Slice::Tiles s;
  Slice::load(s, state, warp);

  for (int step = count - 1, buffer = 0; step >= 0; --step, buffer = 1 - buffer) {
    const int64_t n = chunk0 + step;
    Slice::spill(s, state, warp);
    // (The same loop as the forward states pass's; a shared helper for it changed this kernel's
    // generated code, so each pass keeps its own.)
    bf16* leaving = p.d_states + n * kKeyDim * kValueDim + column0;
    for (int e = lane; e < kRows * kColumns / 8; e += 32) {
      const int row = warp * kRows + e / (kColumns / 8), column = (e % (kColumns / 8)) * 8;
      float x[8];
#pragma unroll
      for (int m = 0; m < 8; ++m) x[m] = state[row * L::kFloatStride + column + m];
      device::store<bf16, 8>(state16 + row * L::kSliceStride + column, x);
      device::store<bf16, 8>(leaving + row * kValueDim + column, x);
    }
    __pipeline_wait_prior(0);
    __syncthreads();  // this chunk's buffers and all of state16 in place; the other buffers free
    if (step > 0) prefetch(step - 1, 1 - buffer);

    // The warp's tile of k_to_end dH.
    const int tile_row = warp / kColumnTiles, tile_column = warp % kColumnTiles;
    {
      Accumulator acc;
      wmma::fill_fragment(acc, 0.0f);
      mma_tile<false, false>(acc, k_buffers + buffer * kKeyElements, L::kKeyStride, state16, L::kSliceStride, tile_row,
                             tile_column, 0, kKeyDim / kTile);
      wmma::store_matrix_sync(product + tile_row * kTile * L::kFloatStride + tile_column * kTile, acc, L::kFloatStride,
                              wmma::mem_row_major);
    }
    __syncwarp();
    // d_delta = dv_local + k_to_end dH on the same tile: out over dv_local, and negated into
    // shared memory for the update. Lane l takes half of the tile's row l / 2.
    {
      const int row = tile_row * kTile + lane / 2, column = tile_column * kTile + (lane % 2) * 8;
      float x[8], minus[8];
      device::load<bf16, 8>(local_buffers + buffer * kSliceElements + row * L::kSliceStride + column, x);
#pragma unroll
      for (int m = 0; m < 8; ++m) {
        x[m] += product[row * L::kFloatStride + column + m];
        minus[m] = -device::round_to<bf16>(x[m]);
      }
      device::store<bf16, 8>(minus_d_delta + row * L::kSliceStride + column, minus);
      device::store<bf16, 8>(p.d_delta + n * kChunk * kValueDim + column0 + row * kValueDim + column, x);
    }
    __syncthreads();  // every row of -d_delta in place

    // dH = exp(G_last) dH + (exp(G) q)^T dO - W^T d_delta.
    const float decay = __expf(p.forward.gates[n * kChunk + kChunk - 1]);
    const bf16* q = q_buffers + buffer * kKeyElements;
    const bf16* w = w_buffers + buffer * kKeyElements;
    const bf16* d_out = do_buffers + buffer * kSliceElements;
#pragma unroll
    for (int i = 0; i < kRowTiles; ++i)
#pragma unroll
      for (int j = 0; j < kColumnTiles; ++j) {
#pragma unroll
        for (int e = 0; e < s[i][j].num_elements; ++e) s[i][j].x[e] *= decay;
        const int ti = warp * kRowTiles + i;
        mma_tile<true, false>(s[i][j], q, L::kKeyStride, d_out, L::kSliceStride, ti, j, 0, kChunk / kTile);
        mma_tile<true, false>(s[i][j], w, L::kKeyStride, minus_d_delta, L::kSliceStride, ti, j, 0, kChunk / kTile);
      }
  }

  if (p.in.d_initial_state == nullptr) return;
  Slice::spill(s, state, warp);
  Slice::write_float(state, p.in.d_initial_state + state_offset, warp, lane);
}

}  // namespace

void launch_backward_states(const BackwardProblem& p, cudaStream_t stream) {
  const auto& in = p.forward.in;
  const dim3 grid(static_cast<unsigned>(in.value_dim / kColumns), static_cast<unsigned>(in.heads),
                  static_cast<unsigned>(in.segments));
  constexpr int bytes = BackwardStatesLayout<128>::bytes;
  auto kernel = backward_states_kernel<128, 128>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  kernel<<<grid, kThreads, bytes, stream>>>(p);
  host::check_launch("gated_delta_chunk_backward (states)");
}

}  // namespace strata::kernels::gdn
