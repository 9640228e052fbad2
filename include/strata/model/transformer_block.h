#pragma once
// TransformerBlock: a stack of TransformerLayers (one spec per layer, so hybrid stacks are just
// different specs) and the final norm. Each layer knows its place in the layer pattern, so the
// block can name its tensors canonically: as if no layer were fused, numbered globally across
// pipeline stages.
#include <torch/nn/modules/container/modulelist.h>

#include "strata/layers/hyper_connection.h"
#include "strata/model/layer_pattern.h"
#include "strata/model/transformer_layer.h"

namespace strata {

struct BlockLayerSpec {
  TransformerLayerSubmodules submodules;
  PatternLayer placement;  // kinds and canonical numbers
};

// mHC: the layers carry `options.num_residual_streams` streams [B, T, n, H] instead of one
// [B, T, H]. The first pipeline stage expands its input to them (copies of the embedding); the
// last contracts them with a HyperConnectionHead before the final norm; stages between pass
// streams on.
struct BlockHyperConnections {
  HyperConnectionOptions options;
  bool expand = true;    // the block holds the first stage
  bool contract = true;  // the block holds the last stage
};

struct TransformerBlockSubmodules {
  std::vector<BlockLayerSpec> layers;
  // Interleaved pipelines: a rank holds several model chunks (virtual stages), each a run of
  // consecutive `layers`; how many each holds, in order. Empty: one chunk of every layer.
  std::vector<size_t> chunk_sizes;
  std::optional<Builder<slots::FinalLayernorm>> final_layernorm;  // absent: identity (not the last stage)
  std::optional<BlockHyperConnections> hyper_connections;        // absent: the plain residual's one stream
  // The layers of a multi-token-prediction depth (MultiTokenPredictionLayer sets it): they are
  // built with LayerArgs.is_mtp_layer, so settings that name decoder layers by number (hash
  // routing) leave them alone although their own numbering restarts at 1.
  bool is_mtp = false;
};

class TransformerBlock : public torch::nn::Module {
 public:
  TransformerBlock(std::shared_ptr<const TransformerConfig> config, const TransformerBlockSubmodules& submodules,
                   const ProcessGroups& pg);

  // hidden: [B, T, H], or mHC streams [B, T, n, H] on a stage after the first; returns [B, T, H]
  // (streams on a stage before the last). A block of one model chunk only.
  at::Tensor forward(const at::Tensor& hidden, ForwardContext& ctx);
  // The layers of model chunk `chunk` alone: the expansion to mHC streams comes before chunk 0,
  // the contraction and final norm after the last chunk.
  at::Tensor forward_chunk(size_t chunk, const at::Tensor& hidden, ForwardContext& ctx);
  size_t num_chunks() const { return chunk_begin_.size() - 1; }

  // Recompute each layer's activations in backward instead of storing them (on), or none (off),
  // whatever config's recompute_* fields chose at construction.
  void set_recompute(bool on);

  // mHC: fuse each half's combine with the next half's maps and collapse (on, the default) or run
  // them as separate ops (off: the reference the fused path is tested against). Halves fuse only
  // where the streams go straight from one to the next: within a model chunk, and within one
  // recomputed group or outside any.
  void set_fused_hyper_connections(bool on);

  size_t num_layers() const { return layers_.size(); }
  TransformerLayer& layer(size_t i) { return *layers_[i]; }
  const PatternLayer& placement(size_t i) const { return placements_[i]; }

  // "layers.<i>.<submodule>..." (this module's own naming) <-> "layers.<canonical>.<submodule>...".
  std::string canonical_name(const std::string& name) const;
  std::string runtime_name(const std::string& canonical) const;

 private:
  // Points each HyperConnection at the half it fuses with (see set_fused_hyper_connections).
  void link_hyper_connections();

  // Layers [first, end) run as one recomputed unit: backward reruns them from `hidden`.
  at::Tensor recomputed_layers(size_t first, size_t end, const at::Tensor& hidden, ForwardContext& ctx);

  std::vector<std::shared_ptr<TransformerLayer>> layers_;
  std::vector<PatternLayer> placements_;
  std::vector<size_t> chunk_begin_;  // chunk c holds layers [chunk_begin_[c], chunk_begin_[c + 1])
  std::shared_ptr<NormModule> final_layernorm_;  // null: identity
  int64_t expand_to_streams_ = 0;                 // 0: the input is already what the layers carry
  std::shared_ptr<HyperConnectionHead> hyper_connection_head_;  // null: nothing to contract
  // Layers recomputed in backward, as [first, end) groups each rerun as one unit (Megatron's full
  // recompute: each layer alone, uniform groups, or the first layers of the stage).
  std::vector<std::pair<size_t, size_t>> recompute_groups_;
  bool residual_in_autocast_dtype_ = false;  // !config.fp32_residual_connection
  bool fuse_hyper_connections_ = true;
};

}  // namespace strata
