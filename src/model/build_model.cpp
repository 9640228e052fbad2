#include "strata/model/build_model.h"

#include "strata/backends/fused_backend.h"
#include "strata/model/layer_specs.h"

namespace strata {

std::shared_ptr<LanguageModel> build_language_model(std::shared_ptr<const TransformerConfig> config) {
  validate(*config);
  return std::make_shared<LanguageModel>(config,
                                         language_model_spec(default_layer_registry(FusedBackend{}, *config), *config));
}

}  // namespace strata
