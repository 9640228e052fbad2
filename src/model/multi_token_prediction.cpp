#include "strata/model/multi_token_prediction.h"

#include "strata/core/error.h"

namespace strata {

std::vector<std::vector<PatternLayer>> resolve_mtp_depths(const TransformerConfig& c) {
  const auto pattern = resolve_layer_pattern(c);
  const auto depths = static_cast<int64_t>(pattern.mtp.size());
  if (depths > 0) {
    if (c.mtp_num_layers != 0 && c.mtp_num_layers != depths)
      fail("TransformerConfig.mtp_num_layers = ", c.mtp_num_layers, " contradicts the layer pattern \"", pattern.text,
           "\", which has ", depths, " MTP depths after '/'");
    return pattern.mtp;
  }
  if (c.mtp_num_layers == 0) return {};
  if (!c.hybrid_layer_pattern.empty())
    fail("TransformerConfig.mtp_num_layers = ", c.mtp_num_layers, ": a hybrid model's MTP layers are the part of its ",
         "layer pattern after '/' (e.g. \"", pattern.text, "/*-\"); the pattern \"", pattern.text, "\" has none");
  // Megatron's GPT MTP: each depth is a layer like the decoder's last.
  auto last = pattern.layers.back();
  last.first_canonical = 0;
  std::vector<std::vector<PatternLayer>> out;
  for (int64_t d = 0; d < c.mtp_num_layers; ++d) {
    out.push_back({last});
    out.back().front().stage = static_cast<int>(d);
  }
  return out;
}

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
  mtp_model_layer_ = register_module("mtp_model_layer", std::make_shared<TransformerBlock>(config, layers, pg));
  final_layernorm_ = register_module("final_layernorm", norm(norm_args));
}

at::Tensor MultiTokenPredictionLayer::forward(const at::Tensor& hidden, const at::Tensor& embedded,
                                              ForwardContext& ctx) {
  // Megatron's order: the embedding half first.
  auto x = at::linear(at::cat({enorm_->forward(embedded), hnorm_->forward(hidden)}, -1), eh_proj_);
  return final_layernorm_->forward(mtp_model_layer_->forward(x, ctx));
}

}  // namespace strata
