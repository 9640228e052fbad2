#pragma once
// The model a config describes, with strata's default layer registry on the fused backend (its
// CUDA kernels on GPUs, their LibTorch twins, the plain backend's arithmetic, elsewhere).
#include "strata/model/language_model.h"

namespace strata {

std::shared_ptr<LanguageModel> build_language_model(std::shared_ptr<const TransformerConfig> config);

}  // namespace strata
