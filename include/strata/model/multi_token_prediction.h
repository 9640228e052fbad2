#pragma once
// Multi-token prediction (DeepSeek-V3's MTP, Megatron's MultiTokenPredictionLayer). Depth d
// (1-based) takes the previous depth's hidden states h (the decoder's, after its final norm, for
// d = 1) and the embedding e of the tokens d positions ahead, and computes
//   x = eh_proj([enorm(e), hnorm(h)])      the two halves concatenated, [.., 2H] -> [.., H]
//   h = final_layernorm(layers(x))         the depth's own layers: its part of the pattern
// whose logits (the shared output layer) predict the tokens d + 1 positions ahead. The training
// loss adds mtp_loss_scaling_factor times the mean of the depths' cross-entropies.
//
// Canonical tensor names, Megatron's: mtp.layers.<d-1>.{enorm,hnorm,eh_proj,final_layernorm}.* and
// mtp.layers.<d-1>.mtp_model_layer.layers.<i>.* with i the canonical index within the depth.
// Positions are not rolled with the tokens (Megatron rolls them): RoPE sees only differences,
// which rolling all positions by d leaves unchanged where a loss is taken.
#include <vector>

#include "strata/model/layer_allocation.h"
#include "strata/model/layer_pattern.h"
#include "strata/model/transformer_block.h"

namespace strata {

struct MultiTokenPredictionSubmodules {
  std::vector<TransformerBlockSubmodules> depths;  // each without a final norm (the depth has its own)
  std::optional<Builder<slots::Norm>> norm;        // enorm, hnorm and final_layernorm
};

class MultiTokenPredictionLayer : public torch::nn::Module {
 public:
  MultiTokenPredictionLayer(std::shared_ptr<const TransformerConfig> config, const TransformerBlockSubmodules& layers,
                            const Builder<slots::Norm>& norm, const ProcessGroups& pg);

  // hidden [B, T, H] (the previous depth's), embedded [B, T, H] (the tokens d ahead) -> [B, T, H].
  at::Tensor forward(const at::Tensor& hidden, const at::Tensor& embedded, ForwardContext& ctx);

  const TransformerBlock& layers() const { return *mtp_model_layer_; }

 private:
  std::shared_ptr<NormModule> enorm_, hnorm_, final_layernorm_;
  at::Tensor eh_proj_;  // [H, 2H]
  std::shared_ptr<TransformerBlock> mtp_model_layer_;
};

}  // namespace strata
