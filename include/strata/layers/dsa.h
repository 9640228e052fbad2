#pragma once
// DeepSeek sparse attention (DeepSeek-V3.2's DSA, Megatron's DSAttention): MLA whose core
// attention reads, for each query, only the keys its lightning indexer selects (the top
// dsa_indexer_topk by index score), still causally masked. With dsa_indexer_topk at least the
// sequence length every visible key is selected, and it is dense MLA.
// Parameters: MLA's (mla.h), plus core_attention.indexer.* (lightning_indexer.h).
#include "strata/layers/lightning_indexer.h"
#include "strata/layers/mla.h"

namespace strata {

struct DsaCoreAttentionSubmodules {
  Builder<slots::DsaIndexer> indexer;
};

class DsaCoreAttention : public LatentCoreAttentionModule {
 public:
  // config.attention_dropout is not applied (Megatron's DSAttention does not apply it either).
  DsaCoreAttention(const CoreAttentionArgs& args, const DsaCoreAttentionSubmodules& submodules);

  // The builder for MLA's core_attention slot.
  static Builder<slots::MlaCoreAttention> builder(DsaCoreAttentionSubmodules submodules);

  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const LatentAttentionInputs& inputs) override;

 private:
  double scale_;
  std::shared_ptr<SparseIndexerModule> indexer_;
};

// softmax(q k^T * scale) v over the keys `allowed` marks ([B, T, S] bool), in the layout of
// LatentCoreAttentionModule; the softmax runs in float32.
at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                            double scale);

// MLA with sparse attention ('D'), from a backend.
template <class B>
MlaSubmodules dsa_submodules(const B& backend) {
  auto sub = mla_submodules(backend);
  sub.core_attention = DsaCoreAttention::builder({.indexer = LightningIndexer::builder(lightning_indexer_submodules(backend))});
  return sub;
}

}  // namespace strata
