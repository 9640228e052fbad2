#pragma once
// Core softmax attention with grouped-query heads: each key/value head serves
// num_heads / num_kv_heads consecutive query heads (HF's repeat_kv, Megatron's query groups).
#include "strata/spec/args.h"
#include "strata/spec/interfaces.h"

namespace strata {

// Softmax attention of q [B, T, heads, D] over k [B, S, kv_heads, D] and v [B, S, kv_heads, Dv],
// each key/value head repeated for its group of query heads; causal aligns the last query with
// the last key. Returns [B, T, heads * Dv]. DotProductAttention and DeepSeek sparse attention
// (when it selects every key) share it, so the two agree to the bit. dropout_p drops attention
// probabilities (config.attention_dropout while training).
at::Tensor grouped_query_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                                   double scale, double dropout_p = 0.0);
// The same with an explicit mask `allowed` [T, S] (true: may attend) instead of causal.
at::Tensor grouped_query_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& allowed, double scale, double dropout_p = 0.0);

class DotProductAttention : public CoreAttentionModule {
 public:
  explicit DotProductAttention(const CoreAttentionArgs& args);
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) override;
  at::Tensor forward_with_mask(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& allowed) override;

 private:
  double scale_;
  bool causal_;
  double dropout_;
};

}  // namespace strata
