#pragma once
// The slots of DeepSeek sparse attention (Megatron's DSAttentionSubmodules and
// DSAIndexerSubmodules): the indexer that picks each query's keys, and the indexer's layers.
#include "strata/layers/mla_slots.h"

namespace strata {

// Chooses, for each query, the keys sparse attention reads.
class SparseIndexerModule : public torch::nn::Module {
 public:
  // [B, T, min(topk, S)] int64 key positions, S the keys so far (the cached ones and the T new).
  // A query with fewer than topk visible keys gets all of them plus positions it must not see,
  // which attention masks.
  virtual at::Tensor forward(const LatentAttentionInputs& inputs) = 0;
};

}  // namespace strata

namespace strata::slots {

STRATA_SLOT(DsaIndexer, "indexer", SparseIndexerModule, CoreAttentionArgs);
STRATA_SLOT(DsaLinearWqB, "linear_wq_b", LinearModule, ColumnLinearArgs);
STRATA_SLOT(DsaLinearWk, "linear_wk", LinearModule, ColumnLinearArgs);
STRATA_SLOT(DsaKNorm, "k_norm", NormModule, NormArgs);
STRATA_SLOT(DsaLinearWeightsProj, "linear_weights_proj", LinearModule, ColumnLinearArgs);

}  // namespace strata::slots
