#pragma once
// How many parameters a model holds, from its config and layer pattern, without building it: per
// kind of layer for `strata describe`, in total for the memory check before a run
// (train/memory_estimate.h). Every parameter the layers register is counted (norms, biases,
// per-head vectors, mHC's maps), the whole model as one process holds it;
// tests/model/parameter_count_test.cpp builds each kind and compares.
#include <cstdint>
#include <map>

#include "strata/core/config.h"
#include "strata/model/layer_pattern.h"

namespace strata {

struct ParameterCount {
  int64_t embedding = 0;        // the word embeddings, and the learned position table when there is one
  int64_t output_layer = 0;     // 0 when tied to the embedding (share_embeddings_and_output_weights)
  int64_t final_layernorm = 0;  // mHC's head that contracts the streams included
  // Per pattern symbol, over the main decoder: each canonical layer with its norm and, under mHC,
  // its residual maps.
  std::map<char, int64_t> by_symbol;
  // The multi-token prediction depths (resolve_mtp_depths), each whole: enorm, hnorm, eh_proj, its
  // layers and its final norm.
  int64_t mtp = 0;

  int64_t layers() const;  // the sum of by_symbol
  int64_t total() const;
};

// The main decoder of `pattern` and the config's MTP depths.
ParameterCount count_parameters(const TransformerConfig& config, const LayerPattern& pattern);

}  // namespace strata
