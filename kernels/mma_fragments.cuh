#pragma once
// Warp-level tensor-core products on PTX: mma.sync m16n8k16 (bfloat16 operands, float32
// accumulators) and the ldmatrix / stmatrix moves between shared memory and its fragments.
// Unlike nvcuda::wmma's opaque fragments, these registers have the layout the PTX ISA documents
// ("Matrix fragments for mma.m16n8k16"), so an accumulator becomes the next product's A operand
// without leaving registers. For lane l, g = l / 4 and t = l % 4 (pairs: the lower column in the
// lower 16 bits):
//   A, 16 x 16 row-major:  a[0] = (row g, columns 2t, 2t+1), a[1] = (g + 8, 2t..), a[2] = (g, 2t + 8..),
//                          a[3] = (g + 8, 2t + 8..)
//   B, 16 x 8 (k x n):     b[0] = (k 2t, 2t+1; n g), b[1] = (k 2t + 8, 2t + 9; n g)
//   C, 16 x 8 float32:     c[0], c[1] = (row g, columns 2t, 2t+1), c[2], c[3] = (g + 8, 2t, 2t+1)
// so the C tiles of columns 16 kk .. 16 kk + 15 are, rounded and paired, A's k-step kk (a_operand).
// ldmatrix / stmatrix move four 8 x 8 bfloat16 matrices: lanes 8i .. 8i + 7 give the addresses of
// matrix i's eight rows (16-byte aligned), and register i holds the lane's pair of matrix i in the
// C layout above (row g, columns 2t, 2t+1); `trans` swaps rows and columns on the way.
#include <cuda_bf16.h>

#include <cstdint>

namespace strata::kernels::mma {

// Two float32 values rounded to bfloat16 and paired as a fragment register.
__device__ __forceinline__ uint32_t pack_bf16(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

// The two bfloat16 values of a fragment register as float32.
__device__ __forceinline__ float low_half(uint32_t pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float high_half(uint32_t pair) { return __uint_as_float(pair & 0xffff0000u); }

// Columns 16 kk .. 16 kk + 15 of a float32 accumulator row block (C tiles 2 kk and 2 kk + 1) as
// the A operand of the next product, rounded to bfloat16.
__device__ __forceinline__ void a_operand(uint32_t (&a)[4], const float (&low)[4], const float (&high)[4]) {
  a[0] = pack_bf16(low[0], low[1]);
  a[1] = pack_bf16(low[2], low[3]);
  a[2] = pack_bf16(high[0], high[1]);
  a[3] = pack_bf16(high[2], high[3]);
}

// c += a b for one 16 x 8 tile.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The row address this lane gives ldmatrix / stmatrix when its four matrices are the quadrants of
// a 16 x 16 block at `block` (row stride `stride` elements): top-left, top-right, bottom-left,
// bottom-right (quadrants_across), or top-left, bottom-left, top-right, bottom-right
// (quadrants_down).
__device__ __forceinline__ const __nv_bfloat16* quadrants_across(const __nv_bfloat16* block, int stride, int lane) {
  const int matrix = lane / 8;
  return block + (8 * (matrix / 2) + lane % 8) * stride + 8 * (matrix % 2);
}
__device__ __forceinline__ const __nv_bfloat16* quadrants_down(const __nv_bfloat16* block, int stride, int lane) {
  const int matrix = lane / 8;
  return block + (8 * (matrix % 2) + lane % 8) * stride + 8 * (matrix / 2);
}

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8 x 8 matrices from shared memory; `row` is this lane's row address (see above).
__device__ __forceinline__ void load_matrices(uint32_t (&r)[4], const __nv_bfloat16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

// The same, each matrix transposed on the way.
__device__ __forceinline__ void load_matrices_transposed(uint32_t (&r)[4], const __nv_bfloat16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

// Four 8 x 8 matrices to shared memory (sm_90): register i's pair (row g, columns 2t, 2t+1) of
// matrix i lands in row g, columns 2t and 2t + 1, of the rows whose addresses lanes 8i .. 8i + 7
// give.
__device__ __forceinline__ void store_matrices(const __nv_bfloat16* row, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(shared_address(row)),
               "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

// Four 8 x 8 matrices to shared memory, each transposed on the way (sm_90): register i's pair
// (row g, columns 2t, 2t+1) of matrix i lands in rows 2t and 2t + 1, column g, of the rows
// whose addresses lanes 8i .. 8i + 7 give.
__device__ __forceinline__ void store_matrices_transposed(const __nv_bfloat16* row, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(shared_address(row)),
               "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

}  // namespace strata::kernels::mma
