#pragma once
// Expert parallelism: the experts of a MoE layer split over the ep group (rank r holds experts
// [r * E / ep, (r + 1) * E / ep)). Each rank routes its own tokens; an all-to-all sends every
// (token, expert) assignment to the rank holding the expert, the experts run on what they
// received, and a second all-to-all brings the outputs back, where they are weighted and summed
// per token exactly as without expert parallelism. Both all-to-alls are differentiable (backward
// is the reverse exchange).
#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "strata/parallel/world.h"

namespace strata::parallel {

// Rows of `input` to the ranks of `group` (send_counts[r] rows to rank r, in order); returns the
// rows received (recv_counts[r] from rank r). Gradients travel back the same way.
at::Tensor all_to_all_rows(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                           const std::vector<int64_t>& recv_counts, const Group& group);

// x [T, H]; indices, weights [T, k] (global expert numbers); run_expert(local expert, rows [n, H])
// -> [n, H]. Returns [T, H]: sum over j of weights[t, j] * expert_{indices[t, j]}(x[t]).
at::Tensor expert_parallel_moe(const at::Tensor& x, const at::Tensor& indices, const at::Tensor& weights,
                               int64_t num_experts, const Group& ep,
                               const std::function<at::Tensor(int64_t, const at::Tensor&)>& run_expert);

}  // namespace strata::parallel
