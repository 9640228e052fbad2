#pragma once
// The part of the model a config describes that one rank of a parallel run holds: the layers of
// its pipeline stage (the pattern's '|' stages, or an even split), with the embedding on the
// first stage and the final norm and output layer on the last, its linears split over tp and its
// experts over ep. With groups of one rank it is build_language_model's model, and under any
// layout it starts from the weights build_language_model would draw with the same seed (with
// several pipeline stages each rank draws the whole model once to get them).
#include "strata/model/language_model.h"

namespace strata::parallel {

// Errors name what cannot be split: a layer kind without a tensor-parallel split (only softmax
// attention, MLP and MoE have one), MTP layers, tied embeddings across stages.
std::shared_ptr<LanguageModel> build_parallel_language_model(std::shared_ptr<const TransformerConfig> config,
                                                             const ProcessGroups& pg);

}  // namespace strata::parallel
