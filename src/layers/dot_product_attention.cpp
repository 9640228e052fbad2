#include "strata/layers/dot_product_attention.h"

#include <cmath>

#include "strata/core/compat.h"
#include "strata/core/error.h"

namespace strata {

DotProductAttention::DotProductAttention(const CoreAttentionArgs& args)
    : scale_(args.softmax_scale.value_or(1.0 / std::sqrt(static_cast<double>(args.head_dim)))),
      causal_(args.attn_mask_type == AttnMaskType::causal),
      dropout_(args.config->attention_dropout) {
  if (args.num_kv_heads <= 0 || args.num_heads % args.num_kv_heads != 0)
    fail("core_attention (layer ", args.layer_number, "): num_kv_heads = ", args.num_kv_heads,
         " must be positive and divide num_heads = ", args.num_heads);
  if (!(dropout_ >= 0.0 && dropout_ < 1.0))
    fail("core_attention (layer ", args.layer_number, "): attention_dropout = ", dropout_,
         ": expected a probability in [0, 1)");
}

namespace {

// [B, T, heads, D] -> [B, heads, T, D]; key/value heads repeat to match the query heads.
at::Tensor heads_first(const at::Tensor& t, int64_t repeat) {
  return (repeat == 1 ? t : t.repeat_interleave(repeat, /*dim=*/2)).transpose(1, 2);
}

}  // namespace

at::Tensor grouped_query_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                                   double scale, double dropout_p) {
  const auto group = q.size(2) / k.size(2);
  auto out = compat::scaled_dot_product_attention(heads_first(q, 1), heads_first(k, group), heads_first(v, group),
                                                  causal, scale, dropout_p);
  return out.transpose(1, 2).flatten(2);
}

at::Tensor grouped_query_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& allowed, double scale, double dropout_p) {
  const auto group = q.size(2) / k.size(2);
  auto out = compat::scaled_dot_product_attention(heads_first(q, 1), heads_first(k, group), heads_first(v, group),
                                                  allowed, scale, dropout_p);
  return out.transpose(1, 2).flatten(2);
}

at::Tensor DotProductAttention::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return grouped_query_attention(q, k, v, causal_, scale_, is_training() ? dropout_ : 0.0);
}

at::Tensor DotProductAttention::forward_with_mask(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                  const at::Tensor& allowed) {
  return grouped_query_attention(q, k, v, allowed, scale_, is_training() ? dropout_ : 0.0);
}

}  // namespace strata
