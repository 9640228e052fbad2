// The chunked gated delta rule's sequential pass (see gated_delta_chunk.cuh): for each chunk in
// order, with S the state entering it,
//   states[c] = S (bfloat16);   delta = U - W S (overwrites U, bfloat16);
//   S = exp(G_last) S + k_to_end^T delta.
// Value columns never mix, so a block owns one (segment, head) and kColumns value columns; its
// 8 warps hold S (key_dim x kColumns, float32) in wmma accumulators across the whole walk, warp w
// rows [w key_dim / 8, (w + 1) key_dim / 8), and each computes one 16 x 16 tile of W S. Each
// chunk's W, k_to_end and U slice are copied into shared memory asynchronously one chunk ahead
// (two buffers), so the loads overlap the previous chunk's products. Both products run on tensor
// cores: W S with S rounded to bfloat16 (as the output pass reads it), and the update with delta
// in bfloat16 (as flash-linear-attention does).
#include <cuda_pipeline.h>

#include "gated_delta_chunk.cuh"

namespace strata::kernels::gdn {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kColumns = 32;  // value columns per block
constexpr int kColumnTiles = kColumns / kTile;
static_assert(kChunk / kTile * kColumnTiles == kWarps, "each warp computes one tile of W S");

template <int kKeyDim>
struct StatesLayout {
  static constexpr int kKeyStride = bf16_stride<kKeyDim>, kSliceStride = bf16_stride<kColumns>;
  static constexpr int kFloatStride = float_stride<kColumns>;
  static constexpr int kKeyBuffer = aligned_bytes(kChunk * kKeyStride * 2);
  static constexpr int kSliceBuffer = aligned_bytes(kChunk * kSliceStride * 2);
  static constexpr int w = 0;                          // [2][kChunk][kKeyStride]
  static constexpr int k_to_end = w + 2 * kKeyBuffer;  // [2][kChunk][kKeyStride]
  static constexpr int u = k_to_end + 2 * kKeyBuffer;  // [2][kChunk][kSliceStride]
  static constexpr int state = u + 2 * kSliceBuffer;   // S, float32 [kKeyDim][kFloatStride]
  static constexpr int state16 = state + aligned_bytes(kKeyDim * kFloatStride * 4);    // S, bfloat16
  static constexpr int product = state16 + aligned_bytes(kKeyDim * kSliceStride * 2);  // W S, float32
  static constexpr int delta = product + aligned_bytes(kChunk * kFloatStride * 4);     // bfloat16
  static constexpr int bytes = delta + kSliceBuffer;
};

template <int kKeyDim, int kValueDim>
__global__ void __launch_bounds__(kThreads) states_kernel(Problem p) {
  using namespace nvcuda;
  using L = StatesLayout<kKeyDim>;
  using Slice = StateSlice<kKeyDim, kValueDim, kColumns, kWarps, L::kFloatStride>;  // S
  constexpr int kRowTiles = Slice::kRowTiles, kRows = Slice::kRows;                  // of S per warp
  const auto& in = p.in;
  const int column0 = blockIdx.x * kColumns, h = blockIdx.y, segment = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const SegmentChunks chunks = segment_chunks(in, segment, h);
  const int64_t chunk0 = chunks.chunk0;
  const int count = chunks.count;

  extern __shared__ __align__(128) unsigned char shared[];
  auto* w_buffers = reinterpret_cast<bf16*>(shared + L::w);
  auto* k_buffers = reinterpret_cast<bf16*>(shared + L::k_to_end);
  auto* u_buffers = reinterpret_cast<bf16*>(shared + L::u);
  auto* state = reinterpret_cast<float*>(shared + L::state);
  auto* state16 = reinterpret_cast<bf16*>(shared + L::state16);
  auto* product = reinterpret_cast<float*>(shared + L::product);
  auto* delta = reinterpret_cast<bf16*>(shared + L::delta);
  constexpr int kKeyElements = kChunk * L::kKeyStride, kSliceElements = L::kSliceBuffer / 2;

  // Chunk `step`'s W, k_to_end and U slice into buffer `buffer`, as one commit group.
  const auto prefetch = [&](int step, int buffer) {
    const int64_t n = chunk0 + step;
    const bf16* w = p.w + n * kChunk * kKeyDim;
    const bf16* k = p.k_to_end + n * kChunk * kKeyDim;
    const bf16* u = p.u + n * kChunk * kValueDim + column0;
    for (int e = threadIdx.x; e < kChunk * kKeyDim / 8; e += kThreads) {
      const int row = e / (kKeyDim / 8), column = (e % (kKeyDim / 8)) * 8;
      __pipeline_memcpy_async(w_buffers + buffer * kKeyElements + row * L::kKeyStride + column,
                              w + row * kKeyDim + column, 16);
      __pipeline_memcpy_async(k_buffers + buffer * kKeyElements + row * L::kKeyStride + column,
                              k + row * kKeyDim + column, 16);
    }
    for (int e = threadIdx.x; e < kChunk * kColumns / 8; e += kThreads) {
      const int row = e / (kColumns / 8), column = (e % (kColumns / 8)) * 8;
      __pipeline_memcpy_async(u_buffers + buffer * kSliceElements + row * L::kSliceStride + column,
                              u + row * kValueDim + column, 16);
    }
    __pipeline_commit();
  };
  if (count > 0) prefetch(0, 0);

  // S from the initial state (zeros without one).
  const int64_t state_offset = (static_cast<int64_t>(segment) * in.heads + h) * kKeyDim * kValueDim + column0;
  Slice::read(in.initial_state, state_offset, state);
  __syncthreads();
  typename Slice::Tiles s;
  Slice::load(s, state, warp);

  for (int step = 0; step < count; ++step) {
    const int buffer = step % 2;
    const int64_t n = chunk0 + step;
    // states[n] = S: the warp's rows, to global memory and to state16 for W S.
    Slice::spill(s, state, warp);
    bf16* entering = p.states + n * kKeyDim * kValueDim + column0;
    for (int e = lane; e < kRows * kColumns / 8; e += 32) {
      const int row = warp * kRows + e / (kColumns / 8), column = (e % (kColumns / 8)) * 8;
      float x[8];
#pragma unroll
      for (int m = 0; m < 8; ++m) x[m] = state[row * L::kFloatStride + column + m];
      device::store<bf16, 8>(state16 + row * L::kSliceStride + column, x);
      device::store<bf16, 8>(entering + row * kValueDim + column, x);
    }
    __pipeline_wait_prior(0);
    __syncthreads();  // this chunk's buffers and all of state16 in place; the other buffers free
    if (step + 1 < count) prefetch(step + 1, 1 - buffer);

    // The warp's tile of W S: rows [16 tile_row, 16 tile_row + 16), columns [16 tile_column, ...).
    const int tile_row = warp / kColumnTiles, tile_column = warp % kColumnTiles;
    const bf16* w = w_buffers + buffer * kKeyElements;
    {
      Accumulator acc;
      wmma::fill_fragment(acc, 0.0f);
      mma_tile_unrolled<kKeyDim / kTile, L::kKeyStride, L::kSliceStride>(acc, w, state16, tile_row, tile_column);
      wmma::store_matrix_sync(product + tile_row * kTile * L::kFloatStride + tile_column * kTile, acc, L::kFloatStride,
                              wmma::mem_row_major);
    }
    __syncwarp();
    // delta = U - W S on the same tile: into shared memory for the update and over U. Lane l
    // takes half of the tile's row l / 2.
    const bf16* u = u_buffers + buffer * kSliceElements;
    bf16* corrections = p.u + n * kChunk * kValueDim + column0;
    {
      const int row = tile_row * kTile + lane / 2, column = tile_column * kTile + (lane % 2) * 8;
      float x[8];
      device::load<bf16, 8>(u + row * L::kSliceStride + column, x);
#pragma unroll
      for (int m = 0; m < 8; ++m) x[m] -= product[row * L::kFloatStride + column + m];
      device::store<bf16, 8>(delta + row * L::kSliceStride + column, x);
      device::store<bf16, 8>(corrections + row * kValueDim + column, x);
    }
    __syncthreads();  // every row of delta in place

    // S = exp(G_last) S + k_to_end^T delta.
    const float decay = __expf(p.gates[n * kChunk + kChunk - 1]);
    const bf16* k = k_buffers + buffer * kKeyElements;
#pragma unroll
    for (int i = 0; i < kRowTiles; ++i)
#pragma unroll
      for (int j = 0; j < kColumnTiles; ++j) {
#pragma unroll
        for (int e = 0; e < s[i][j].num_elements; ++e) s[i][j].x[e] *= decay;
#pragma unroll
        for (int kk = 0; kk < kChunk / kTile; ++kk) {
          FragmentAt at;
          FragmentB bm;
          wmma::load_matrix_sync(at, k + kk * kTile * L::kKeyStride + warp * kRows + i * kTile, L::kKeyStride);
          wmma::load_matrix_sync(bm, delta + kk * kTile * L::kSliceStride + j * kTile, L::kSliceStride);
          wmma::mma_sync(s[i][j], at, bm, s[i][j]);
        }
      }
  }

  Slice::spill(s, state, warp);
  Slice::write_float(state, in.final_state + state_offset, warp, lane);
}

}  // namespace

void launch_states(const Problem& p, cudaStream_t stream) {
  require_head_sizes_128(p.in);
  const dim3 grid(static_cast<unsigned>(p.in.value_dim / kColumns), static_cast<unsigned>(p.in.heads),
                  static_cast<unsigned>(p.in.segments));
  constexpr int bytes = StatesLayout<128>::bytes;
  auto kernel = states_kernel<128, 128>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  kernel<<<grid, kThreads, bytes, stream>>>(p);
  host::check_launch("gated_delta_chunk_forward (states)");
}

}  // namespace strata::kernels::gdn
