#pragma once
// What the three passes of the chunked gated delta rule's forward share (launch::
// gated_delta_chunk_forward; the organisation is flash-linear-attention's):
//   prepare (gated_delta_chunk_prepare.cu), one block per (row, head, chunk): the in-chunk
//     cumulative gates G, T = (I + strictly_lower(beta_i exp(G_i - G_j) k_i.k_j))^-1 (written only
//     where the forward keeps its intermediates for the backward), W = T (beta exp(G) k),
//     U = T (beta v);
//   states (gated_delta_chunk_states.cu), a pair of warps per (segment, head, 16 value columns),
//     each with half of the keys, over the chunks in order: delta = U - W S,
//     S = exp(G_last) S + k^T (exp(G_last - G) delta), each token's write as seen at the chunk's end;
//   output (gated_delta_chunk_output.cu), one block per (row, head, chunk):
//     O = diag(exp(G)) q S + (q k^T o exp(G_i - G_j) o causal) delta.
// Tensor-core products (mma.sync on registers of known layout, mma_fragments.cuh) take bfloat16
// operands and accumulate in float32. Only CUDA headers here (no LibTorch).
#include <cuda_pipeline.h>

#include <type_traits>

#include "common.cuh"

namespace strata::kernels::gdn {

using bf16 = __nv_bfloat16;
constexpr int kChunk = static_cast<int>(launch::kGatedDeltaChunk);

// Shared-memory row strides (elements): rows padded by 16 bytes so that the eight rows an
// ldmatrix / stmatrix matrix reads or writes (16 bytes each, 16-byte aligned) fall in different
// banks.
template <int kColumns>
constexpr int bf16_stride = kColumns + 8;

// Rounds shared-memory region sizes up so that every region starts 128-byte aligned.
constexpr int aligned_bytes(int bytes) { return (bytes + 127) / 128 * 128; }

// The pointers and sizes every pass reads (launch::GatedDeltaChunkForward with its workspace cut
// into arrays). Chunk arrays are indexed by (row b, head h, chunk c) as (b * heads + h) * chunks + c.
struct Problem {
  launch::GatedDeltaChunkForward in;
  float* gates;    // [batch, heads, chunks, kChunk]: G, the cumulative gate within the chunk
  bf16* w;         // [batch, heads, chunks, kChunk, key_dim]
  bf16* u;         // [batch, heads, chunks, kChunk, value_dim]: U, then the corrections delta
  bf16* states;    // [batch, heads, chunks, key_dim, value_dim]: S as the chunk is entered
  bf16* inverse;   // [batch, heads, chunks, kChunk, kChunk]: T as W and U used it, for the backward
};

// The tokens of chunk c of row b: first .. first + length - 1 (length in 1..kChunk).
struct ChunkSpan {
  int first, length;
};

__device__ __forceinline__ ChunkSpan chunk_span(const launch::GatedDeltaChunkForward& in, int c) {
  if (in.chunk_tokens != nullptr) return {in.chunk_tokens[2 * c], in.chunk_tokens[2 * c + 1]};
  const int first = c * kChunk;
  return {first, min(kChunk, static_cast<int>(in.seq) - first)};
}

// The key head (of q and k) that value head h reads: heads / key_heads consecutive value heads
// share one.
__device__ __forceinline__ int key_head_of(const launch::GatedDeltaChunkForward& in, int h) {
  return h / static_cast<int>(in.heads / in.key_heads);
}

// Element `index` of a per-token array (g, beta: [batch, seq, heads]) as float32, in whichever
// dtype it came (saves the caller a conversion kernel; widening is exact).
__device__ __forceinline__ float per_token_at(const void* x, launch::Dtype dtype, int64_t index) {
  switch (dtype) {
    case launch::Dtype::BFloat16: return __bfloat162float(static_cast<const bf16*>(x)[index]);
    case launch::Dtype::Float16: return __half2float(static_cast<const __half*>(x)[index]);
    default: return static_cast<const float*>(x)[index];
  }
}

// Eight consecutive values of T as float32 (16-byte aligned).
template <class T>
__device__ __forceinline__ void load8(const T* p, float (&out)[8]) {
  if constexpr (sizeof(T) == 4) {
    float low[4], high[4];
    device::load<T, 4>(p, low);
    device::load<T, 4>(p + 4, high);
#pragma unroll
    for (int i = 0; i < 4; ++i) out[i] = low[i], out[4 + i] = high[i];
  } else {
    device::load<T, 8>(p, out);
  }
}

// Staging a block's operands in shared memory. A pass's first step loads its whole chunk (the
// gradients pass ~200 KB with one block an SM): copies in flight together instead of one row
// group's load waiting for the previous one's store. bfloat16 rows go as asynchronous copies;
// rows that need widening or zeros go through registers, every load of a thread issued before its
// first store. A pass calls staged_rows_wait() before the __syncthreads that publishes the rows.
// A thread's pieces of 16 bytes lie a fixed number of rows apart (the threads cover whole rows at
// a time), so that it works out its addresses once and each further piece costs one copy at an
// offset: the walks' copy warps issue these on the same schedulers as the walking warps, and every
// instruction they spend lengthens a step.

// Where thread `thread` of kThreads starts in rows of kColumns bfloat16 (16-byte pieces), and how
// many rows apart its pieces of a kRows-row block are.
template <int kRows, int kColumns, int kThreads>
struct RowPieces {
  static constexpr int kPerRow = kColumns / 8;
  static_assert(kThreads % kPerRow == 0 && kRows % (kThreads / kPerRow) == 0,
                "the threads cover whole rows, the same number of pieces each");
  static constexpr int kRowStep = kThreads / kPerRow, kPieces = kRows / kRowStep;
  int row, column;

  __device__ __forceinline__ explicit RowPieces(int thread) : row(thread / kPerRow), column(thread % kPerRow * 8) {}
};

// A thread's pieces of a chunk's rows (token first + i, i < kChunk) of one head of a
// [B, T, H, kColumns] tensor, held in registers as float32 on their way to shared memory as
// bfloat16 (row stride bf16_stride<kColumns>): rows that need narrowing go through registers, and
// a walk's copy warps load them a step before they store them (walk::KeyStager). kThreads threads
// share the rows (`thread`: this one's index among them).
template <class T, int kColumns, int kThreads>
struct RowsInRegisters {
  using Pieces = RowPieces<kChunk, kColumns, kThreads>;
  float x[Pieces::kPieces][8];

  // `head` points at (b, first, h, 0); seq_stride is the tensor's position stride; rows past
  // `length` are zeros.
  __device__ __forceinline__ void load(const T* head, int64_t seq_stride, int length, int thread) {
    const Pieces at(thread);
    head += at.row * seq_stride + at.column;
#pragma unroll
    for (int s = 0; s < Pieces::kPieces; ++s) {
#pragma unroll
      for (int m = 0; m < 8; ++m) x[s][m] = 0.0f;
      if (at.row + s * Pieces::kRowStep < length) load8(head + s * Pieces::kRowStep * seq_stride, x[s]);
    }
  }

  __device__ __forceinline__ void store(bf16* to, int thread) const {
    const Pieces at(thread);
    to += at.row * bf16_stride<kColumns> + at.column;
#pragma unroll
    for (int s = 0; s < Pieces::kPieces; ++s)
      device::store<bf16, 8>(to + s * Pieces::kRowStep * bf16_stride<kColumns>, x[s]);
  }
};

// The chunk's rows of one head of a [B, T, H, kColumns] tensor as bfloat16 in shared memory (row
// stride bf16_stride<kColumns>), as RowsInRegisters takes them; bfloat16 rows go as asynchronous
// copies, the zeros past `length` as stores.
template <class T, int kColumns, int kThreads>
__device__ __forceinline__ void stage_rows(const T* head, int64_t seq_stride, int length, bf16* to,
                                           int thread = threadIdx.x) {
  if constexpr (std::is_same_v<T, bf16>) {
    using Pieces = RowPieces<kChunk, kColumns, kThreads>;
    const Pieces at(thread);
    head += at.row * seq_stride + at.column;
    to += at.row * bf16_stride<kColumns> + at.column;
    const float zeros[8] = {};
#pragma unroll
    for (int s = 0; s < Pieces::kPieces; ++s) {
      bf16* row_to = to + s * Pieces::kRowStep * bf16_stride<kColumns>;
      if (at.row + s * Pieces::kRowStep < length)
        __pipeline_memcpy_async(row_to, head + s * Pieces::kRowStep * seq_stride, 16);
      else
        device::store<bf16, 8>(row_to, zeros);
    }
  } else {
    RowsInRegisters<T, kColumns, kThreads> rows;
    rows.load(head, seq_stride, length, thread);
    rows.store(to, thread);
  }
}

// The first row of chunk `span` of head `head` of row b of a [B, T, H, ...] tensor (x, of T's at
// element strides s).
template <class T>
__device__ __forceinline__ const T* head_rows(const void* x, const launch::RowStrides& s, int b, ChunkSpan span,
                                              int head) {
  return static_cast<const T*>(x) + b * s.batch + static_cast<int64_t>(span.first) * s.seq + head * s.head;
}

// stage_rows for chunk `span` of head `head` of row b of a [B, T, H, kColumns] tensor (x, of T's
// at element strides s).
template <class T, int kColumns, int kThreads>
__device__ __forceinline__ void stage_head_rows(const void* x, const launch::RowStrides& s, int b, ChunkSpan span,
                                                int head, bf16* to, int thread = threadIdx.x) {
  stage_rows<T, kColumns, kThreads>(head_rows<T>(x, s, b, span, head), s.seq, span.length, to, thread);
}

// kRows rows of kWidth bfloat16 (16-byte aligned rows, row strides in elements) from global to
// shared memory, as asynchronous copies by kThreads threads (`thread`: this one's index among them).
template <int kRows, int kWidth, int kThreads>
__device__ __forceinline__ void copy_rows(const bf16* from, int64_t from_stride, bf16* to, int to_stride,
                                          int thread = threadIdx.x) {
  using Pieces = RowPieces<kRows, kWidth, kThreads>;
  const Pieces at(thread);
  from += at.row * from_stride + at.column;
  to += at.row * to_stride + at.column;
#pragma unroll
  for (int s = 0; s < Pieces::kPieces; ++s)
    __pipeline_memcpy_async(to + s * Pieces::kRowStep * to_stride, from + s * Pieces::kRowStep * from_stride, 16);
}

// Waits for this thread's asynchronous copies of stage_rows and copy_rows; a __syncthreads must
// follow before any thread reads the rows.
__device__ __forceinline__ void staged_rows_wait() {
  __pipeline_commit();
  __pipeline_wait_prior(0);
}

// The chunks a block of a sequential pass (states, backward states) walks: all of row `segment`,
// or, for packed documents, document `segment`'s; chunk0 indexes the first (row b, head h) in the
// chunk arrays, `row` and `first` are b and its index in the row.
struct SegmentChunks {
  int64_t chunk0;
  int count;
  int row, first;
};

__device__ __forceinline__ SegmentChunks segment_chunks(const launch::GatedDeltaChunkForward& in, int segment, int h) {
  int b = segment, first = 0, count = static_cast<int>(in.chunks);
  if (in.segment_chunks != nullptr) {
    b = 0;
    first = in.segment_chunks[segment];
    count = in.segment_chunks[segment + 1] - first;
  }
  return {(static_cast<int64_t>(b) * in.heads + h) * in.chunks + first, count, b, first};
}

// The arguments checked (sizes, alignment) and the workspace cut into the passes' arrays.
Problem problem_of(const launch::GatedDeltaChunkForward& args);

// The forward passes' kernels are built for key_dim = value_dim = 128 only.
inline void require_head_sizes_128(const launch::GatedDeltaChunkForward& in) {
  if (in.key_dim != 128 || in.value_dim != 128)
    fail("gated_delta_chunk_forward: key_dim ", in.key_dim, " and value_dim ", in.value_dim,
         "; the kernels are built for 128 and 128");
}

// The launch of the per-chunk passes that take q and k in one dtype and v (or dO) in another:
// kernel_of(Tag<QK>{}, Tag<V>{}) names the instantiation for in's dtypes, which runs on `stream`
// with `bytes` of dynamic shared memory (opted into first, as it exceeds the default 48 KiB).
template <class Arguments, class KernelOf>
void launch_for_dtypes(const launch::GatedDeltaChunkForward& in, KernelOf kernel_of, dim3 grid, int threads, int bytes,
                       cudaStream_t stream, const Arguments& p) {
  host::dispatch(in.qk_dtype, [&](auto qk_tag) {
    host::dispatch(in.v_dtype, [&](auto v_tag) {
      auto kernel = kernel_of(qk_tag, v_tag);
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
      kernel<<<grid, threads, bytes, stream>>>(p);
    });
  });
}

// The per-pass launchers, each dispatching on dtypes and head sizes.
void launch_prepare(const Problem& p, cudaStream_t stream);
void launch_states(const Problem& p, cudaStream_t stream);
void launch_output(const Problem& p, cudaStream_t stream);

}  // namespace strata::kernels::gdn
