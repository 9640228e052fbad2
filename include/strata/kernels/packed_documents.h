#pragma once
// Packed documents (variable-length training): one batch row holding N documents back to back,
// described as Megatron and flash-linear-attention do by cu_seqlens, the N + 1 offsets
// 0 = cu_seqlens[0] < cu_seqlens[1] < ... < cu_seqlens[N] = T (int64 or int32, any device):
// document d is tokens cu_seqlens[d] .. cu_seqlens[d + 1] - 1. The ops that mix tokens over time
// (Gated DeltaNet's conv and delta rule) restart at each document's first token.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace strata::kernels {

// cu_seqlens read on the host (a synchronisation when it lives on a GPU) and checked against a
// batch of `batch` rows of `seq` tokens: `fn` names the op in the errors.
std::vector<int64_t> document_bounds(const char* fn, const at::Tensor& cu_seqlens, int64_t batch, int64_t seq);

}  // namespace strata::kernels
