#pragma once
// The raw CUDA launchers of strata::kernels::l2_normalize_heads (kernels/l2_normalize_heads.cu).
// Same conventions as launch.h: device pointers, asynchronous on `stream`; a CPU-only build's
// stubs throw. Kept out of launch.h so that the other kernels' wrappers do not recompile for it.
#include "strata/kernels/launch.h"

namespace strata::kernels::launch {

// Longest head (row) the kernels take; longer ones run the twin.
constexpr int64_t kMaxL2NormalizeHeadDim = 256;

// x: [B, T, Hk, D] in `dtype` with a contiguous last dimension and the given strides; out: the
// contiguous [B, Hk * repeats, T, D] array in `dtype` with, for j = h / repeats,
//   out[b, h, t, :] = scale * x[b, t, j, :] * rsqrt(sum(x[b, t, j, :]^2) + eps)
// (float32 math, one rounding), D <= kMaxL2NormalizeHeadDim.
void l2_normalize_heads_forward(Dtype dtype, const void* x, RowStrides x_strides, void* out, int64_t batch,
                                int64_t seq, int64_t key_heads, int64_t repeats, int64_t dim, float scale, float eps,
                                Stream stream);

// The backward: with r = rsqrt(sum(x^2) + eps) per row of x and dn the sum over its `repeats`
// heads of grad_out ([B, T, Hk * repeats, D] with the given strides, contiguous last dimension),
//   grad_x = scale * (r dn - r^3 x sum(dn x)),
// written to the contiguous [B, T, Hk, D] array grad_x; all in `dtype`, float32 math.
void l2_normalize_heads_backward(Dtype dtype, const void* grad_out, RowStrides grad_strides, const void* x,
                                 RowStrides x_strides, void* grad_x, int64_t batch, int64_t seq, int64_t key_heads,
                                 int64_t repeats, int64_t dim, float scale, float eps, Stream stream);

}  // namespace strata::kernels::launch
