#pragma once
// DeepSeek-V4's hash router (HF's DeepseekV4HashRouter; DeepSeek's Gate of its first n_hash_layers
// layers): each token's experts are a fixed row of a token-id table, tid2eid[token], not the top k
// of its scores. The learned gate still weights them: the weights are the score function of the
// gate's logits at the table's experts, renormalised (moe_router_norm_topk_prob) and times
// moe_router_topk_scaling_factor, as TopKRouter weights its own choice. There is no expert bias
// (nothing is chosen by score) and no load-balancing loss (HF records only its top-k routers'
// logits for one; the table fixes each expert's load).
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "strata/core/config.h"
#include "strata/layers/moe_router.h"

namespace strata {

class HashRouter : public torch::nn::Module {
 public:
  // Parameter weight [E, H]; buffer tid2eid [vocab_size, k] int64 (HF's persistent buffer of the
  // same name: no gradient, its values come from the checkpoint). Initialised with k distinct
  // experts per token drawn uniformly (HF writes zeros, which would send every token to expert 0
  // k times). Errors name the bad moe_* field, as TopKRouter's do.
  explicit HashRouter(const TransformerConfig& config);

  // x [T, H], token_ids [T] (any integer dtype, any device). Routing.probs stays undefined.
  Routing forward(const at::Tensor& x, const at::Tensor& token_ids);

  // Module::to converts every buffer to a dtype, integers included: the table would round (bf16
  // holds integers exactly only up to 256). These move it and leave it int64.
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Dtype dtype, bool non_blocking = false) override;

  const at::Tensor& table() const { return tid2eid_; }

 private:
  RouterScoreFunction score_function_;
  bool normalize_topk_;
  double scaling_factor_;
  at::Tensor weight_;
  at::Tensor tid2eid_;
};

}  // namespace strata
