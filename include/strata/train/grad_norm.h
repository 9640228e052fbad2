#pragma once
// Gradient norms and clipping in multi-tensor kernels: a model's ~100 gradients are read once
// and scaled in a handful of launches instead of three small kernels per gradient.
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace strata::train {

// The squared L2 norm of each tensor, as a float64 tensor [n] on the tensors' device. float32
// tensors are summed in float32 (the multi-tensor norm), others converted to float32 first.
at::Tensor squared_norms(const std::vector<at::Tensor>& tensors);

// Multiplies every tensor by `scale` in place.
void scale_in_place(const std::vector<at::Tensor>& tensors, double scale);

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(const std::map<std::string, at::Tensor>& params, double max_norm);

}  // namespace strata::train
