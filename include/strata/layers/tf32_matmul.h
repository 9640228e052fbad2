#pragma once
// A float32 matrix product on TF32 tensor cores (inputs rounded to a 10-bit mantissa, float32
// accumulation), forward and backward, for products whose result ends up in a bf16 or fp16
// tensor anyway: TF32 keeps 4x finer steps than bf16, and on Hopper runs ~8x faster than the
// float32 FMA path that cuBLAS takes for float32 by default. Off CUDA it is at::matmul.
//
// cuBLAS's TF32 switch is process-wide (at::Context::allowTF32CuBLAS): it is turned on for the
// duration of each product and restored after, so products elsewhere keep their setting, but a
// float32 product another host thread runs at that very moment would see it too.
#include <ATen/ATen.h>

namespace strata {

// a [..., M, K] @ b [..., K, N] with equal batch dimensions (no broadcasting), float32.
at::Tensor tf32_matmul(const at::Tensor& a, const at::Tensor& b);

// tf32_matmul where `tf32`, at::matmul otherwise: for code that decides per call.
at::Tensor matmul_tf32_if(bool tf32, const at::Tensor& a, const at::Tensor& b);

}  // namespace strata
