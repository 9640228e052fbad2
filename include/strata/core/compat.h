#pragma once
// The one place where LibTorch versions differ. strata builds against Debian's LibTorch 1.13 on
// CPU machines and against the LibTorch inside the PyTorch 2.11 wheel on the GPU machine.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <optional>

#define STRATA_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace strata::compat {

// Causal or full softmax attention over [B, heads, T, D] tensors. LibTorch >= 2.0 has a fused
// scaled_dot_product_attention (flash / memory-efficient kernels on CUDA); 1.13 does not, so the
// math is spelled out. Both compute dropout(softmax(q k^T * scale + mask), dropout_p) v in the
// input dtype (dropout_p > 0 only while training).
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        bool causal, double scale, double dropout_p = 0.0);
// The same with an explicit boolean mask `allowed` [T, S] (true: may attend).
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& allowed, double scale, double dropout_p = 0.0);

// bf16/fp16 autocast for CUDA ops while alive (the API moved between LibTorch 1.13 and 2.x).
class CudaAutocast {
 public:
  explicit CudaAutocast(at::ScalarType dtype);
  ~CudaAutocast();
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;
};

// The dtype CUDA ops compute in under autocast; nullopt while CUDA autocast is off.
std::optional<at::ScalarType> cuda_autocast_dtype();

// One AdamW step over a group of CUDA parameters in one fused kernel (LibTorch >= 2.0's
// _fused_adamw_): p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p), moments updated in
// place; `step` is the 1-based count of this update. Returns false, doing nothing, where this
// LibTorch has no fused kernel or a tensor is not on CUDA.
bool fused_adamw_step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                      const std::vector<at::Tensor>& exp_avgs, const std::vector<at::Tensor>& exp_avg_sqs,
                      int64_t step, double lr, double beta1, double beta2, double weight_decay, double eps);

// Whether this LibTorch has the float8 dtypes that safetensors' F8_E4M3 / F8_E5M2 name.
constexpr bool has_float8_dtypes() { return STRATA_TORCH_AT_LEAST(2, 1); }

// at::ScalarType for F8_E4M3 / F8_E5M2; only valid when has_float8_dtypes().
at::ScalarType float8_e4m3_dtype();
at::ScalarType float8_e5m2_dtype();

}  // namespace strata::compat
