#include "strata/layers/compressed_indexer.h"

#include <cmath>
#include <limits>

#include "strata/layers/top_k_selection.h"

namespace strata {

namespace {
const TransformerConfig& validated(const TransformerConfig& c) {
  validate_shared_kv_attention(c, /*indexed=*/true);
  return c;
}
}  // namespace

CompressedIndexer::CompressedIndexer(std::shared_ptr<const TransformerConfig> config,
                                     const CompressedIndexerSubmodules& sub)
    : num_heads_(validated(*config).dsa_indexer_n_heads),
      head_dim_(config->dsa_indexer_head_dim),
      topk_(config->dsa_indexer_topk),
      rotary_(config->qk_pos_emb_head_dim, config->compress_rotary_base, config->compress_rotary_scaling) {
  const auto& c = *config;
  compressor_ = register_module(
      "compressor", std::make_shared<KvCompressor>(
                        config, KvCompressorShape{.width = head_dim_, .rate = c.csa_compress_rate, .overlapping = true},
                        sub.compressor));
  auto column = [&](const auto& builder, const char* name, int64_t input_size, int64_t output_size) {
    return register_module(name, builder(ColumnLinearArgs{.config = config, .input_size = input_size,
                                                          .output_size = output_size, .init_std = c.init_method_std,
                                                          .name = name}));
  };
  linear_wq_b_ = column(sub.linear_wq_b, "linear_wq_b", c.q_lora_rank, num_heads_ * head_dim_);
  linear_weights_proj_ = column(sub.linear_weights_proj, "linear_weights_proj", c.hidden_size, num_heads_);
}

at::Tensor CompressedIndexer::scores(const at::Tensor& hidden, const at::Tensor& q_latent, int64_t offset,
                                     KvCompressorState* state) {
  // Selection has no gradient, and the indexer is not trained by the language-model loss.
  at::NoGradGuard no_grad;
  const auto batch = hidden.size(0), seq = hidden.size(1);
  auto keys = compressor_->forward(hidden, state);  // [B, E, D]
  auto q = linear_wq_b_->forward(q_latent).output.view({batch, seq, num_heads_, head_dim_});
  auto [cos, sin] = rotary_.tables(at::arange(offset, offset + seq, at::TensorOptions().dtype(at::kLong).device(hidden.device())));
  q = apply_interleaved_rotary(q, cos, sin);
  // Per head ReLU(q . k) / sqrt(D), [B, T, heads, E]; the heads weighed and summed, [B, T, E].
  auto per_head = at::relu(at::matmul(q.to(at::kFloat), keys.to(at::kFloat).transpose(-1, -2).unsqueeze(1))) *
                  (1.0 / std::sqrt(static_cast<double>(head_dim_)));
  auto weights = linear_weights_proj_->forward(hidden).output.to(at::kFloat) *
                 (1.0 / std::sqrt(static_cast<double>(num_heads_)));
  auto index_scores = (per_head * weights.unsqueeze(-1)).sum(2);
  auto visible = compressed_entry_visible(seq, offset, keys.size(1), compressor_->rate(), hidden.device());
  return index_scores.masked_fill(visible.logical_not(), -std::numeric_limits<double>::infinity());
}

at::Tensor CompressedIndexer::forward(const at::Tensor& hidden, const at::Tensor& q_latent, int64_t offset,
                                      KvCompressorState* state) {
  auto index_scores = scores(hidden, q_latent, offset, state);
  // Ties (every head's ReLU zero: score exactly 0) go to the lowest entries (top_k_selection.h),
  // so decoding, which ranks fewer entries per call, reads what the full forward reads. A query
  // with fewer complete windows than topk also gets incomplete ones (score -inf): not read.
  return top_k_mask(index_scores, topk_).logical_and(index_scores.isfinite());
}

}  // namespace strata
