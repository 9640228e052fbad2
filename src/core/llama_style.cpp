#include "strata/core/llama_style.h"

namespace strata {

void use_llama_style(TransformerConfig& c) {
  c.position_embedding_type = PositionEmbeddingType::Rope;
  c.normalization = Normalization::RMSNorm;
  c.add_bias_linear = false;
  c.gated_linear_unit = true;
  c.activation_func = Activation::SiLU;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.share_embeddings_and_output_weights = false;
  c.fp32_residual_connection = true;
}

}  // namespace strata
