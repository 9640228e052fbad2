#pragma once
// The top-k router of a mixture of experts (Megatron's TopKRouter, HF's Qwen3NextTopKRouter):
// scores every expert for each token, picks k of them and says how much each one's output counts.
// It also computes the switch load-balancing loss that keeps the experts evenly used.
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <string>

#include "strata/core/config.h"

namespace strata {

// Softmax over the experts, or per expert sigmoid(logit) or sqrt(softplus(logit)) (DeepSeek-V4).
enum class RouterScoreFunction { Softmax, Sigmoid, SqrtSoftplus };

// "softmax" / "sigmoid" / "sqrtsoftplus"; errors name moe_router_score_function and list the valid values.
RouterScoreFunction parse_router_score_function(const std::string& value);

struct Routing {
  at::Tensor indices;  // [T, k] int64: the experts each token goes to
  at::Tensor weights;  // [T, k] float32: what each selected expert's output is multiplied by
  // [T, E] float32: per token a distribution over all experts (load-balancing loss); undefined
  // where no loss can change the choice (the hash router's fixed table).
  at::Tensor probs;
};

// The router's gating logits x w^T in float32, whatever the autocast: routing decisions are made
// in float32 (Megatron's moe_router_dtype=fp32, HF's softmax dtype). x: [T, H], weight: [E, H].
at::Tensor router_logits(const at::Tensor& x, const at::Tensor& weight);
// Each expert's score from the logits [T, E]: a softmax over the experts, or per expert
// sigmoid(logit) or sqrt(softplus(logit)).
at::Tensor router_scores(const at::Tensor& logits, RouterScoreFunction score_function);
// What each chosen expert's output is multiplied by: the scores [T, E] at `indices` [T, k],
// renormalised to sum to 1 per token when `normalize` (HF's order: score all experts, take k,
// renormalise those k), times `scaling_factor`.
at::Tensor routing_weights(const at::Tensor& scores, const at::Tensor& indices, bool normalize, double scaling_factor);

class TopKRouter : public torch::nn::Module {
 public:
  // Parameters: weight [E, H]; with moe_router_enable_expert_bias also the buffer expert_bias [E].
  // Errors name the bad moe_* field: no experts, top-k outside [1, experts], unknown score function.
  explicit TopKRouter(const TransformerConfig& config);

  Routing forward(const at::Tensor& x);  // x: [T, H]

 private:
  RouterScoreFunction score_function_;
  int64_t topk_;
  bool normalize_topk_;
  double scaling_factor_;
  at::Tensor weight_;
  at::Tensor expert_bias_;  // undefined unless moe_router_enable_expert_bias
};

// Megatron's switch_load_balancing_loss_func for one micro-batch of T tokens:
//   coeff * E * sum_e f_e * P_e,
//   f_e = (number of (token, slot) assignments to e) / (T * k)   (so sum_e f_e = 1; no gradient)
//   P_e = (sum over tokens of probs[:, e]) / T                    (the router's mean probability)
// A perfectly even router gives coeff (f_e = P_e = 1/E). As in Megatron the assignments are the
// top-k of `probs` itself, i.e. without the expert bias: the loss judges the router's own
// preferences, not the bias that corrects them. probs: [T, E], rows summing to 1.
// HF's load_balancing_loss_func divides the counts by T alone, so its value is k times this one
// (and it pools the tokens of all layers); a coefficient tuned for HF needs multiplying by k here.
at::Tensor switch_load_balancing_loss(const at::Tensor& probs, int64_t topk, double coeff);

}  // namespace strata
