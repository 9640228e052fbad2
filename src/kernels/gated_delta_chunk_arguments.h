#pragma once
// What the fused chunked gated delta rule's forward and backward entry points share
// (gated_delta_chunk_forward.cpp, gated_delta_chunk_backward.cpp): which inputs the kernels take,
// and the inputs turned into the kernels' arguments.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// Whether the kernels take these inputs, whatever the grad mode: CUDA tensors on one device with
// use_cuda_kernels(v), v in bfloat16 or float16, q and k of one shape and dtype among float32,
// bfloat16 and float16 with a number of heads that divides v's, floating g, beta and
// initial_state, chunk_size launch::kGatedDeltaChunk and head sizes within
// launch::gated_delta_chunk_fits.
bool gated_delta_chunk_kernels_take(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                    const at::Tensor& beta, int64_t chunk_size,
                                    const std::optional<at::Tensor>& initial_state);

// t as the kernels read it: last dimension contiguous, rows (pointer and strides) 16-byte aligned.
at::Tensor readable(const at::Tensor& t);

// The forward's arguments for these inputs (checked as `fn`), with out, final_state and
// workspace left null, and the tensors they point into (copies made readable, float32 g and
// initial state, contiguous beta, packed documents' chunk tables), which must outlive the launch.
struct GatedDeltaChunkArguments {
  launch::GatedDeltaChunkForward args;
  std::vector<at::Tensor> held;
};

GatedDeltaChunkArguments gated_delta_chunk_arguments(const char* fn, const at::Tensor& q, const at::Tensor& k,
                                                     const at::Tensor& v, const at::Tensor& g, const at::Tensor& beta,
                                                     const std::optional<at::Tensor>& initial_state,
                                                     const std::vector<int64_t>& document_bounds);

}  // namespace strata::kernels
