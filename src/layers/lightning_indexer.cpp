#include "strata/layers/lightning_indexer.h"

#include <cmath>
#include <limits>

#include "strata/core/error.h"
#include "strata/layers/rotary.h"
#include "strata/layers/top_k_selection.h"

namespace strata {

namespace {
// DeepSeek's indexer normalises its keys with a fixed epsilon, whatever the model's norms use.
constexpr double kKeyNormEpsilon = 1e-6;
}  // namespace

at::Tensor visible_keys(int64_t queries, int64_t keys, at::Device device) {
  return at::ones({queries, keys}, at::TensorOptions().dtype(at::kBool).device(device)).tril(keys - queries);
}

LightningIndexer::LightningIndexer(const CoreAttentionArgs& args, const LightningIndexerSubmodules& sub)
    : num_heads_(args.config->dsa_indexer_n_heads),
      head_dim_(args.config->dsa_indexer_head_dim),
      topk_(args.config->dsa_indexer_topk) {
  const auto& c = *args.config;
  validate_latent_attention(c, /*sparse=*/true);
  auto column = [&](const auto& builder, const char* name, int64_t input_size, int64_t output_size) {
    return register_module(name, builder(ColumnLinearArgs{
        .config = args.config, .input_size = input_size, .output_size = output_size, .init_std = c.init_method_std,
        .name = name, .pg = args.pg}));
  };
  linear_wq_b_ = column(sub.linear_wq_b, "linear_wq_b", c.q_lora_rank, num_heads_ * head_dim_);
  linear_wk_ = column(sub.linear_wk, "linear_wk", c.hidden_size, head_dim_);
  k_norm_ = register_module("k_norm", sub.k_norm(NormArgs{args.config, head_dim_, kKeyNormEpsilon}));
  linear_weights_proj_ = column(sub.linear_weights_proj, "linear_weights_proj", c.hidden_size, num_heads_);
}

Builder<slots::DsaIndexer> LightningIndexer::builder(LightningIndexerSubmodules submodules) {
  return [submodules = std::move(submodules)](const CoreAttentionArgs& args) {
    return std::make_shared<LightningIndexer>(args, submodules);
  };
}

at::Tensor LightningIndexer::scores(const LatentAttentionInputs& in) {
  if (!in.q_latent.defined())
    fail("lightning indexer: the MLA layer passed no query latent (q_lora_rank = 0); the indexer scores from it");
  // Selection has no gradient, and the indexer is not trained by the language-model loss.
  at::NoGradGuard no_grad;
  const auto batch = in.hidden.size(0), seq = in.hidden.size(1);
  auto q = linear_wq_b_->forward(in.q_latent).output.view({batch, seq, num_heads_, head_dim_});
  q = apply_rotary(q, in.rotary_cos, in.rotary_sin);
  auto k = k_norm_->forward(linear_wk_->forward(in.hidden).output);
  k = apply_rotary(k.unsqueeze(2), in.rotary_cos, in.rotary_sin).squeeze(2);
  if (in.state) {
    if (in.state->indexer_keys.defined()) k = at::cat({in.state->indexer_keys, k}, 1);
    in.state->indexer_keys = k;
  }

  // Per head: ReLU(q . k / sqrt(D)), [B, T, heads, S]; then the heads weighed and summed, [B, T, S].
  auto per_head = at::relu(at::matmul(q.to(at::kFloat), k.to(at::kFloat).transpose(-1, -2).unsqueeze(1)) *
                           (1.0 / std::sqrt(static_cast<double>(head_dim_))));
  auto weights = linear_weights_proj_->forward(in.hidden).output.to(at::kFloat) *
                 (1.0 / std::sqrt(static_cast<double>(num_heads_)));
  auto index_scores = at::matmul(weights.unsqueeze(-2), per_head).squeeze(-2);
  auto future = visible_keys(seq, k.size(1), k.device()).logical_not();
  return index_scores.masked_fill(future, -std::numeric_limits<double>::infinity());
}

at::Tensor LightningIndexer::forward(const LatentAttentionInputs& inputs) {
  // Ties (every head's ReLU zero: score exactly 0) go to the lowest positions (top_k_selection.h).
  return top_k_positions(scores(inputs), topk_);
}

}  // namespace strata
