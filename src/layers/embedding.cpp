#include "strata/layers/embedding.h"

#include "strata/core/error.h"

namespace strata {

namespace {

// On CPU a bad index is checked here for a clear error; on GPU the check would cost a device sync
// every step, so the data pipeline (ids) and the caller (positions) check there.
void check_rows(const at::Tensor& indices, int64_t rows, const char* what, const char* table) {
  if (indices.is_cuda() || indices.numel() == 0) return;
  const auto lo = indices.min().item<int64_t>(), hi = indices.max().item<int64_t>();
  if (lo < 0 || hi >= rows)
    fail("embedding: ", what, " ", lo < 0 ? lo : hi, " is outside the ", table, " [0, ", rows, ")");
}

}  // namespace

LanguageModelEmbedding::LanguageModelEmbedding(const TransformerConfig& config) : dropout_(config.hidden_dropout) {
  auto word_embeddings = register_module("word_embeddings", std::make_shared<torch::nn::Module>());
  weight_ = word_embeddings->register_parameter(
      "weight", at::randn({config.vocab_size, config.hidden_size}) * config.init_method_std);
  if (config.position_embedding_type != PositionEmbeddingType::LearnedAbsolute) return;
  auto position_embeddings = register_module("position_embeddings", std::make_shared<torch::nn::Module>());
  position_weight_ = position_embeddings->register_parameter(
      "weight", at::randn({config.max_position_embeddings, config.hidden_size}) * config.init_method_std);
}

at::Tensor LanguageModelEmbedding::forward(const at::Tensor& input_ids, const at::Tensor& positions) {
  check_rows(input_ids, weight_.size(0), "token id", "vocabulary");
  auto x = at::embedding(weight_, input_ids);
  if (position_weight_.defined()) {
    check_rows(positions, position_weight_.size(0), "position", "position table (max_position_embeddings)");
    x = x + at::embedding(position_weight_, positions);
  }
  if (dropout_ > 0.0 && is_training()) x = at::dropout(x, dropout_, /*train=*/true);
  return x;
}

}  // namespace strata
