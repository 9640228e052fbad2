#pragma once
// The chunked delta rule's scan over chunks (launch::chunk_state_scan) on ATen tensors, without
// autograd: strata::delta_rule_chunk_states (layers/delta_rule_chunk_states.h) runs it for its
// forward and its backward, on this kernel or on the LibTorch twin chunk_state_scan_reference.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// Leading dimensions [...] are any batch (sequence, head) dimensions, the same in every tensor.
struct ChunkScanInputs {
  at::Tensor x0;      // [..., Dk, Dv] ([S, ..., Dk, Dv] with segments): the carried value before the first
                      // chunk visited
  at::Tensor y_init;  // [..., N, C, Dv]
  at::Tensor a, b;    // [..., N, C, Dk]
  at::Tensor decay;   // [..., N]
  at::Tensor x_add;   // [..., N, Dk, Dv], or undefined for zero
  double y_sign = 1;
  double x_sign = 1;
  bool reverse = false;  // visit chunks from the last
  // Segments (packed documents): int64 [S + 1] on any device, nondecreasing from 0 to N; segment s
  // holds chunks chunk_offsets[s] .. chunk_offsets[s + 1] - 1. The carried value restarts from
  // x0[s] as each segment's first visited chunk is entered, and x_final[s] is its value after the
  // segment's last visited chunk. Undefined: one segment of all N chunks per leading index.
  at::Tensor chunk_offsets;
};

struct ChunkScanResult {
  at::Tensor states;   // [..., N, Dk, Dv]: the carried value as chunk n is entered
  at::Tensor y;        // [..., N, C, Dv]
  at::Tensor x_final;  // [..., Dk, Dv] ([S, ..., Dk, Dv] with segments): after the last chunk visited
};

// Whether chunk_state_scan_cuda takes these inputs: float32 CUDA tensors, Dk and C within
// launch::chunk_state_scan_fits, kernels built and switched on.
bool chunk_state_scan_kernel_applies(const ChunkScanInputs& in);

ChunkScanResult chunk_state_scan_cuda(const ChunkScanInputs& in);

}  // namespace strata::kernels
