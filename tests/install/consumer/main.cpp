// Uses strata through its installed headers and library: a checked config, and one layer run on
// LibTorch tensors (so LibTorch's headers and libraries must come with strata::strata).
#include <cstdio>
#include <memory>

#include "strata/core/config.h"
#include "strata/layers/norm.h"

int main() {
  auto config = std::make_shared<strata::TransformerConfig>();
  config->num_layers = 2;
  config->hidden_size = 8;
  config->ffn_hidden_size = 16;
  config->num_attention_heads = 2;
  config->num_query_groups = 1;
  config->kv_channels = 4;
  config->vocab_size = 32;
  config->max_position_embeddings = 16;  // Megatron's learned position table (its default embedding)
  strata::validate(*config);
  // RMSNorm of a constant row is 1 everywhere (unit weights): 8 ones per row, 3 rows.
  strata::RMSNorm norm({config, config->hidden_size, config->layernorm_epsilon});
  const double sum = norm.forward(at::full({3, config->hidden_size}, 5.0)).sum().item<double>();
  std::printf("strata consumer: rotary_dim %lld, rmsnorm sum %.3f\n", static_cast<long long>(config->rotary_dim()), sum);
  return 0;
}
