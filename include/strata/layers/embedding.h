#pragma once
// Token embedding: word_embeddings [vocab, hidden], plus with learned_absolute position embeddings
// position_embeddings [max_position_embeddings, hidden] at each token's position (Megatron's
// LanguageModelEmbedding), followed by dropout (config.hidden_dropout).
#include "strata/core/config.h"
#include "strata/spec/interfaces.h"

namespace strata {

class LanguageModelEmbedding : public torch::nn::Module {
 public:
  explicit LanguageModelEmbedding(const TransformerConfig& config);
  // input_ids [B, T]; positions [T] (the tokens' positions, read only with a position table).
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& positions);
  const at::Tensor& weight() const { return weight_; }
  bool has_position_table() const { return position_weight_.defined(); }

 private:
  at::Tensor weight_;
  at::Tensor position_weight_;  // undefined without learned_absolute position embeddings
  double dropout_;
};

}  // namespace strata
