#pragma once
// From backends and layer patterns to layer specs.
//
// Spec functions templated on a backend give the submodules of each mixer; a LayerRegistry maps
// the pattern's symbols to mixer builders (the one place where a runtime choice, a pattern
// string, selects among typed specs); block_spec turns a list of pattern layers into the block's
// layer specs.
#include <map>

#include "strata/backends/local_backend.h"
#include "strata/layers/dsa.h"
#include "strata/layers/gated_delta_net.h"
#include "strata/layers/gated_delta_net2.h"
#include "strata/layers/mamba2.h"
#include "strata/layers/mla.h"
#include "strata/layers/mlp.h"
#include "strata/layers/moe.h"
#include "strata/layers/self_attention.h"
#include "strata/layers/shared_kv_attention.h"
#include "strata/model/language_model.h"
#include "strata/model/transformer_block.h"

namespace strata {

template <class B>
SelfAttentionSubmodules self_attention_submodules(const B& backend, bool qk_layernorm) {
  static_assert(check_backend<B>());
  SelfAttentionSubmodules sub{
      .linear_qkv = backend.column_parallel_linear(),
      .core_attention = backend.core_attention(),
      .linear_proj = backend.row_parallel_linear(),
  };
  if (qk_layernorm) {
    sub.q_layernorm = configured_norm(backend);
    sub.k_layernorm = configured_norm(backend);
  }
  return sub;
}

template <class B>
MlpSubmodules mlp_submodules(const B& backend) {
  static_assert(check_backend<B>());
  return {.linear_fc1 = backend.column_parallel_linear(), .linear_fc2 = backend.row_parallel_linear()};
}

// The classic GPT layer: attention then MLP, fused in one TransformerLayer.
template <class B>
TransformerLayerSubmodules gpt_layer_spec(const B& backend, bool qk_layernorm) {
  TransformerLayerSubmodules layer;
  layer.input_layernorm = configured_norm(backend);
  layer.self_attention = SelfAttention::builder(self_attention_submodules(backend, qk_layernorm));
  layer.pre_mlp_layernorm = configured_norm(backend);
  layer.mlp = Mlp::as_mlp_submodule(mlp_submodules(backend));
  return layer;
}

class LayerRegistry {
 public:
  explicit LayerRegistry(Builder<slots::Norm> norm) : norm_(std::move(norm)) {}

  void set(SequenceMixerKind kind, Builder<slots::SelfAttention> builder);
  void set(ChannelMixerKind kind, Builder<slots::Mlp> builder);

  // The layer for one pattern entry; a kind with no builder is an error naming the symbol and
  // listing the kinds that can be built.
  TransformerLayerSubmodules layer_spec(const PatternLayer& layer) const;
  const Builder<slots::Norm>& norm() const { return norm_; }

 private:
  std::string registered() const;

  Builder<slots::Norm> norm_;
  std::map<SequenceMixerKind, Builder<slots::SelfAttention>> sequence_;
  std::map<ChannelMixerKind, Builder<slots::Mlp>> channel_;
};

// The kinds strata can build, from one backend.
template <class B>
LayerRegistry default_layer_registry(const B& backend, const TransformerConfig& config) {
  LayerRegistry registry(configured_norm(backend));
  registry.set(SequenceMixerKind::Attention,
               SelfAttention::builder(self_attention_submodules(backend, config.qk_layernorm)));
  registry.set(ChannelMixerKind::Mlp, Mlp::as_mlp_submodule(mlp_submodules(backend)));
  registry.set(SequenceMixerKind::Mamba2, Mamba2Mixer::builder(mamba2_submodules(backend)));
  // 'G' (and linear_attention_freq's layers): Gated DeltaNet-2 under the gdn2 variant, as Megatron's
  // hybrid block and GPT specs swap the module class and keep GDN's submodules.
  registry.set(SequenceMixerKind::GatedDeltaNet,
               config.experimental_attention_variant == "gdn2"
                   ? GatedDeltaNet2::builder(gated_delta_net_submodules(backend))
                   : GatedDeltaNet::builder(gated_delta_net_submodules(backend)));
  registry.set(ChannelMixerKind::MoE, MoE::builder(moe_submodules(backend, config)));
  registry.set(SequenceMixerKind::MultiLatentAttention, MultiLatentAttention::builder(mla_submodules(backend)));
  registry.set(SequenceMixerKind::DeepSeekSparseAttention, MultiLatentAttention::builder(dsa_submodules(backend)));
  registry.set(SequenceMixerKind::SlidingWindowAttention,
               SharedKvAttention::builder(shared_kv_attention_submodules(backend, CompressedBranch::None)));
  registry.set(SequenceMixerKind::CompressedSparseAttention,
               SharedKvAttention::builder(shared_kv_attention_submodules(backend, CompressedBranch::Sparse)));
  registry.set(SequenceMixerKind::HeavilyCompressedAttention,
               SharedKvAttention::builder(shared_kv_attention_submodules(backend, CompressedBranch::Heavy)));
  return registry;
}

// The block spec for `layers` (a whole pattern or one pipeline stage's slice of it). The final
// norm belongs to the stage that holds the last layer.
TransformerBlockSubmodules block_spec(const LayerRegistry& registry, const std::vector<PatternLayer>& layers,
                                      bool with_final_layernorm = true);

// mHC on `block` (a block_spec result) when config.enable_mhc_connections, for any pattern:
// every layer's residual becomes a HyperConnection (recomputing its maps in backward under
// config's selective "mhc" recompute); the block expands to the streams when it holds
// canonical layer 0 (the first stage) and contracts them when it holds the final norm (the last).
void add_hyper_connections(TransformerBlockSubmodules& block, const TransformerConfig& config);

// The whole decoder a config describes (its resolved layer pattern), on one stage.
TransformerBlockSubmodules decoder_spec(const LayerRegistry& registry, const TransformerConfig& config);

// The MTP depths a config describes (multi_token_prediction.h), none without MTP.
MultiTokenPredictionSubmodules mtp_spec(const LayerRegistry& registry, const TransformerConfig& config);

// The decoder and the MTP depths: the whole model a config describes, on one stage.
LanguageModelSubmodules language_model_spec(const LayerRegistry& registry, const TransformerConfig& config);

}  // namespace strata
