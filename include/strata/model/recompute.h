#pragma once
// Activation recomputation (Megatron's --recompute-granularity full): a function of one tensor
// runs without keeping its intermediate activations; backward runs it again, with the same RNG
// state, to get them. Only the input is stored.
#include <ATen/ATen.h>

#include <functional>
#include <vector>

namespace strata {

// fn's outputs all leave the recomputed region: the first is its result, the others values it
// reports on the side (a layer's MoE aux losses). Each returned tensor's gradient flows into the
// replay of the output at its position, so a loss built from any of them trains what made it.
// fn must return as many outputs when replayed as it did the first time.
std::vector<at::Tensor> recompute(const std::function<std::vector<at::Tensor>(const at::Tensor&)>& fn,
                                  const at::Tensor& input);

}  // namespace strata
