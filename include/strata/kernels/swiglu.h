#pragma once
// Fused SwiGLU, forward and backward, on fc1's output [..., 2F] laid out [gate | up]:
// silu(gate) * up [..., F] in the input dtype, float32 math.
#include <ATen/ATen.h>

#include "strata/kernels/dispatch.h"

namespace strata::kernels {

// The LibTorch twin (chunk, silu, multiply), on any device, differentiable by autograd.
at::Tensor swiglu_reference(const at::Tensor& gate_up);

// The CUDA kernels behind an autograd function that keeps only gate_up for the backward.
at::Tensor swiglu_cuda(const at::Tensor& gate_up);

// The kernels where use_cuda_kernels(gate_up), the twin otherwise.
at::Tensor swiglu(const at::Tensor& gate_up);

}  // namespace strata::kernels
