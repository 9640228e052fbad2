#include "strata/core/compat.h"

#include "strata/core/error.h"

namespace strata::compat {

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        bool causal, double scale, double dropout_p) {
#if STRATA_TORCH_AT_LEAST(2, 1)
  const auto tq = q.size(-2), tk = k.size(-2);
  if (!causal || tq == tk) return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, dropout_p, causal, scale);
  // With cached keys (tk > tq) the causal mask aligns to the bottom right; SDPA's is_causal
  // aligns top left, so the mask is given explicitly (true = may attend).
  auto allowed = at::ones({tq, tk}, q.options().dtype(at::kBool)).tril(tk - tq);
  return at::scaled_dot_product_attention(q, k, v, allowed, dropout_p, /*is_causal=*/false, scale);
#else
  auto scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  if (causal) {
    const auto tq = q.size(-2), tk = k.size(-2);
    // Query i may see keys 0..i + (tk - tq): the usual alignment when a cache holds earlier keys.
    auto mask = at::ones({tq, tk}, q.options().dtype(at::kBool)).triu(tk - tq + 1);
    scores = scores.masked_fill(mask, -std::numeric_limits<double>::infinity());
  }
  auto probs = at::softmax(scores, -1);
  if (dropout_p > 0.0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  return at::matmul(probs, v);
#endif
}

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& allowed, double scale, double dropout_p) {
#if STRATA_TORCH_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, allowed, dropout_p, /*is_causal=*/false, scale);
#else
  auto scores = (at::matmul(q, k.transpose(-2, -1)) * scale).masked_fill(allowed.logical_not(),
                                                                         -std::numeric_limits<double>::infinity());
  auto probs = at::softmax(scores, -1);
  if (dropout_p > 0.0) probs = at::dropout(probs, dropout_p, /*train=*/true);
  return at::matmul(probs, v);
#endif
}

CudaAutocast::CudaAutocast(at::ScalarType dtype) {
#if STRATA_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
  at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(true);
#endif
}

CudaAutocast::~CudaAutocast() {
#if STRATA_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
  at::autocast::set_enabled(false);
#endif
  at::autocast::clear_cache();
}

std::optional<at::ScalarType> cuda_autocast_dtype() {
#if STRATA_TORCH_AT_LEAST(2, 4)
  if (!at::autocast::is_autocast_enabled(at::kCUDA)) return std::nullopt;
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  if (!at::autocast::is_enabled()) return std::nullopt;
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

at::ScalarType float8_e4m3_dtype() {
#if STRATA_TORCH_AT_LEAST(2, 1)
  return at::kFloat8_e4m3fn;
#else
  fail("float8 tensors (safetensors dtype F8_E4M3) need LibTorch >= 2.1; this build uses ", TORCH_VERSION);
#endif
}

at::ScalarType float8_e5m2_dtype() {
#if STRATA_TORCH_AT_LEAST(2, 1)
  return at::kFloat8_e5m2;
#else
  fail("float8 tensors (safetensors dtype F8_E5M2) need LibTorch >= 2.1; this build uses ", TORCH_VERSION);
#endif
}

bool fused_adamw_step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                      const std::vector<at::Tensor>& exp_avgs, const std::vector<at::Tensor>& exp_avg_sqs,
                      int64_t step, double lr, double beta1, double beta2, double weight_decay, double eps) {
#if STRATA_TORCH_AT_LEAST(2, 0)
  if (params.empty()) return true;
  for (const auto& p : params)
    if (!p.is_cuda()) return false;
  // The kernel reads one step count per parameter for the bias corrections; they all share one.
  const auto count = at::full({}, static_cast<double>(step), params.front().options().dtype(at::kFloat));
  const std::vector<at::Tensor> steps(params.size(), count);
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2,
                    weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
  return true;
#else
  return false;
#endif
}

}  // namespace strata::compat
