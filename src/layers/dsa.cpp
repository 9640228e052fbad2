#include "strata/layers/dsa.h"

#include <cmath>
#include <limits>

#include "strata/core/error.h"
#include "strata/layers/dot_product_attention.h"

namespace strata {

at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                            double scale) {
  // [B, T|S, heads, D] -> [B, heads, T|S, D]; the mask broadcasts over heads.
  auto scores = at::matmul(q.transpose(1, 2), k.transpose(1, 2).transpose(-2, -1)) * scale;
  scores = scores.masked_fill(allowed.unsqueeze(1).logical_not(), -std::numeric_limits<double>::infinity());
  auto probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(probs, v.transpose(1, 2)).transpose(1, 2).flatten(2);
}

DsaCoreAttention::DsaCoreAttention(const CoreAttentionArgs& args, const DsaCoreAttentionSubmodules& sub)
    : scale_(args.softmax_scale.value_or(1.0 / std::sqrt(static_cast<double>(args.head_dim)))) {
  if (args.attn_mask_type != AttnMaskType::causal)
    fail("DeepSeek sparse attention (layer ", args.layer_number, "): only causal attention is supported");
  // attention_dropout is not applied, as in Megatron's DSAttention (which takes it and never uses it).
  indexer_ = register_module("indexer", sub.indexer(args));
}

Builder<slots::MlaCoreAttention> DsaCoreAttention::builder(DsaCoreAttentionSubmodules submodules) {
  return [submodules = std::move(submodules)](const CoreAttentionArgs& args) {
    return std::make_shared<DsaCoreAttention>(args, submodules);
  };
}

at::Tensor DsaCoreAttention::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const LatentAttentionInputs& inputs) {
  const auto batch = q.size(0), queries = q.size(1), keys = k.size(1);
  auto selected = indexer_->forward(inputs);
  if (selected.dim() != 3 || selected.size(0) != batch || selected.size(1) != queries)
    fail("DeepSeek sparse attention: the indexer selected keys of shape ", selected.sizes(), ", expected [", batch,
         ", ", queries, ", k]");
  // Every key selected: dense causal attention, the same call dense MLA makes.
  if (selected.size(-1) >= keys) return grouped_query_attention(q, k, v, /*causal=*/true, scale_);
  auto chosen = at::zeros({batch, queries, keys}, q.options().dtype(at::kBool)).scatter(-1, selected, true);
  return masked_attention(q, k, v, chosen.logical_and(visible_keys(queries, keys, q.device())), scale_);
}

}  // namespace strata
