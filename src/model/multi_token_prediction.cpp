#include "strata/model/multi_token_prediction.h"

#include "strata/core/error.h"

namespace strata {

MultiTokenPredictionLayer::MultiTokenPredictionLayer(std::shared_ptr<const TransformerConfig> config,
                                                     const TransformerBlockSubmodules& layers,
                                                     const Builder<slots::Norm>& norm, const ProcessGroups& pg) {
  if (layers.final_layernorm) fail("MultiTokenPredictionLayer: its layers must not have a final norm of their own");
  const NormArgs norm_args{config, config->hidden_size, config->layernorm_epsilon};
  enorm_ = register_module("enorm", norm(norm_args));
  hnorm_ = register_module("hnorm", norm(norm_args));
  const auto h = config->hidden_size;
  eh_proj_ = register_module("eh_proj", std::make_shared<torch::nn::Module>())
                 ->register_parameter("weight", at::randn({h, 2 * h}) * config->init_method_std);
  auto depth = layers;
  depth.is_mtp = true;
  mtp_model_layer_ = register_module("mtp_model_layer", std::make_shared<TransformerBlock>(config, depth, pg));
  final_layernorm_ = register_module("final_layernorm", norm(norm_args));
}

at::Tensor MultiTokenPredictionLayer::forward(const at::Tensor& hidden, const at::Tensor& embedded,
                                              ForwardContext& ctx) {
  // Megatron's order: the embedding half first.
  auto x = at::linear(at::cat({enorm_->forward(embedded), hnorm_->forward(hidden)}, -1), eh_proj_);
  return final_layernorm_->forward(mtp_model_layer_->forward(x, ctx));
}

}  // namespace strata
