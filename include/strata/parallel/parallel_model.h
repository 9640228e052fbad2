#pragma once
// The part of the model a config describes that one rank of a parallel run holds: the layers of
// its pipeline stage, or of each of its virtual stages (model chunks, for the interleaved
// schedule), with the embedding on the first stage and the final norm and output layer on the
// last, its linears split over tp and its experts over ep. With groups of one rank it is
// build_language_model's model, and under any layout it starts from the weights
// build_language_model would draw with the same seed (with several pipeline stages each rank draws
// the whole model once to get them).
#include "strata/model/language_model.h"
#include "strata/model/layer_pattern.h"

namespace strata::parallel {

// Errors name what cannot be split: a layer kind without a tensor-parallel split (only softmax
// attention, MLP and MoE have one), MTP layers, tied embeddings across stages, a split for
// another pipeline size than pg's.
std::shared_ptr<LanguageModel> build_parallel_language_model(std::shared_ptr<const TransformerConfig> config,
                                                             const ProcessGroups& pg, const PipelineSplit& split);
// The split the pattern gives by itself (resolve_pipeline_split without flags): its '|' segments,
// pp x vp of them, or an even split over pg's pipeline ranks.
std::shared_ptr<LanguageModel> build_parallel_language_model(std::shared_ptr<const TransformerConfig> config,
                                                             const ProcessGroups& pg);

}  // namespace strata::parallel
