#pragma once
// Megatron's tensor-parallel mappings: differentiable moves of activations into and out of
// tensor-parallel regions, each a forward collective paired with its adjoint in backward.
//
//   copy_to_tensor_parallel_region        identity            | all-reduce
//   reduce_from_tensor_parallel_region    all-reduce          | identity
//   scatter_to_tensor_parallel_region     split last dim      | all-gather last dim
//   gather_from_tensor_parallel_region    all-gather last dim | split last dim
//   scatter_to_sequence_parallel_region   split sequence      | all-gather sequence
//   gather_from_sequence_parallel_region  all-gather sequence | reduce-scatter (or split) sequence
//   reduce_scatter_to_sequence_parallel_region  reduce-scatter sequence | all-gather sequence
//
// Hidden states are [B, T, H]: the sequence is dimension 1. A null group (one rank) is identity.
#include <ATen/ATen.h>

#include "strata/parallel/world.h"

namespace strata::parallel {

constexpr int64_t kSequenceDim = 1;

at::Tensor copy_to_tensor_parallel_region(const at::Tensor& x, const Group& tp);
at::Tensor reduce_from_tensor_parallel_region(const at::Tensor& x, const Group& tp);
at::Tensor scatter_to_tensor_parallel_region(const at::Tensor& x, const Group& tp);
at::Tensor gather_from_tensor_parallel_region(const at::Tensor& x, const Group& tp);

at::Tensor scatter_to_sequence_parallel_region(const at::Tensor& x, const Group& tp);
// `reduce_scatter_grad`: the consumer of the gathered tensor is itself split over tp (a
// column-parallel linear), so each rank's gradient is a partial sum to reduce; false when every
// rank computes the same thing from the gathered tensor (a replicated output layer), whose
// gradient is then whole on every rank and only split.
at::Tensor gather_from_sequence_parallel_region(const at::Tensor& x, const Group& tp, bool reduce_scatter_grad);
at::Tensor reduce_scatter_to_sequence_parallel_region(const at::Tensor& x, const Group& tp);

}  // namespace strata::parallel
