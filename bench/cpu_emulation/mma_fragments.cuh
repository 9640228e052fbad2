#pragma once
// The CPU emulation's kernels/mma_fragments.cuh (run.sh puts it in front of the real one): the
// same functions with the PTX instructions' documented semantics, each lane a thread. A
// warp-collective instruction publishes every lane's registers or row address in a per-warp
// exchange, waits for the warp, and then each lane takes or writes the elements the layouts
// assign to it (g = lane / 4, t = lane % 4; see the real header).
#include <cstdint>
#include <cstring>

namespace strata::kernels::mma {

struct EmuLaneRegisters {
  uint32_t r[6];
  const __nv_bfloat16* row;
};
inline EmuLaneRegisters emu_lanes[32][32];  // [warp][lane]

inline EmuLaneRegisters& emu_mine() { return emu_lanes[threadIdx.x / 32][threadIdx.x % 32]; }
inline const EmuLaneRegisters& emu_lane(int lane) { return emu_lanes[threadIdx.x / 32][lane]; }

inline uint16_t emu_bits(__nv_bfloat16 v) {
  uint16_t b;
  std::memcpy(&b, &v, 2);
  return b;
}
inline __nv_bfloat16 emu_bf16(uint16_t b) {
  __nv_bfloat16 v;
  std::memcpy(&v, &b, 2);
  return v;
}
inline float emu_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint32_t pack_bf16(float low, float high) {
  return emu_bits(__float2bfloat16_rn(low)) | static_cast<uint32_t>(emu_bits(__float2bfloat16_rn(high))) << 16;
}
inline float low_half(uint32_t pair) { return emu_float(pair << 16); }
inline float high_half(uint32_t pair) { return emu_float(pair & 0xffff0000u); }

inline void a_operand(uint32_t (&a)[4], const float (&low)[4], const float (&high)[4]) {
  a[0] = pack_bf16(low[0], low[1]);
  a[1] = pack_bf16(low[2], low[3]);
  a[2] = pack_bf16(high[0], high[1]);
  a[3] = pack_bf16(high[2], high[3]);
}

// Element (row, column) of the 16 x 16 A operand and (k, n) of the 16 x 8 B operand, from the
// lanes' published registers.
inline float emu_a(int row, int column) {
  const int lane = 4 * (row % 8) + (column % 8) / 2, reg = row / 8 + 2 * (column / 8);
  const uint32_t pair = emu_lane(lane).r[reg];
  return column % 2 == 0 ? low_half(pair) : high_half(pair);
}
inline float emu_b(int k, int n) {
  const int lane = 4 * n + (k % 8) / 2, reg = 4 + k / 8;
  const uint32_t pair = emu_lane(lane).r[reg];
  return k % 2 == 0 ? low_half(pair) : high_half(pair);
}

inline void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  auto& mine = emu_mine();
  for (int i = 0; i < 4; ++i) mine.r[i] = a[i];
  mine.r[4] = b0;
  mine.r[5] = b1;
  __syncwarp();
  const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e / 2), n = 2 * t + e % 2;
    float s = c[e];
    for (int k = 0; k < 16; ++k) s += emu_a(row, k) * emu_b(k, n);
    c[e] = s;
  }
  __syncwarp();
}

inline const __nv_bfloat16* quadrants_across(const __nv_bfloat16* block, int stride, int lane) {
  const int matrix = lane / 8;
  return block + (8 * (matrix / 2) + lane % 8) * stride + 8 * (matrix % 2);
}
inline const __nv_bfloat16* quadrants_down(const __nv_bfloat16* block, int stride, int lane) {
  const int matrix = lane / 8;
  return block + (8 * (matrix % 2) + lane % 8) * stride + 8 * (matrix / 2);
}

// ldmatrix: element (row g, column 2t + e) of matrix i is at row g of its rows (lane 8i + g),
// column 2t + e; transposed, at row 2t + e (lane 8i + 2t + e), column g.
inline void emu_load(uint32_t (&r)[4], const __nv_bfloat16* row, bool transposed) {
  emu_mine().row = row;
  __syncwarp();
  const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  for (int i = 0; i < 4; ++i) {
    uint16_t half[2];
    for (int e = 0; e < 2; ++e)
      half[e] = transposed ? emu_bits(emu_lane(8 * i + 2 * t + e).row[g]) : emu_bits(emu_lane(8 * i + g).row[2 * t + e]);
    r[i] = half[0] | static_cast<uint32_t>(half[1]) << 16;
  }
  __syncwarp();
}
inline void load_matrices(uint32_t (&r)[4], const __nv_bfloat16* row) { emu_load(r, row, false); }
inline void load_matrices_transposed(uint32_t (&r)[4], const __nv_bfloat16* row) { emu_load(r, row, true); }

// stmatrix: the lane's element (row g, column 2t + e) of matrix i goes to row g of its rows
// (lane 8i + g), column 2t + e; transposed, to row 2t + e (lane 8i + 2t + e), column g.
inline void emu_store(const __nv_bfloat16* row, const uint32_t (&r)[4], bool transposed) {
  emu_mine().row = row;
  __syncwarp();
  const int g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
  for (int i = 0; i < 4; ++i)
    for (int e = 0; e < 2; ++e) {
      const auto value = emu_bf16(static_cast<uint16_t>(e == 0 ? r[i] & 0xffffu : r[i] >> 16));
      if (transposed)
        const_cast<__nv_bfloat16*>(emu_lane(8 * i + 2 * t + e).row)[g] = value;
      else
        const_cast<__nv_bfloat16*>(emu_lane(8 * i + g).row)[2 * t + e] = value;
    }
  __syncwarp();
}
inline void store_matrices(const __nv_bfloat16* row, const uint32_t (&r)[4]) { emu_store(row, r, false); }
inline void store_matrices_transposed(const __nv_bfloat16* row, const uint32_t (&r)[4]) { emu_store(row, r, true); }

}  // namespace strata::kernels::mma
