#pragma once
// The hybrid layer pattern language: Megatron-LM's --hybrid-layer-pattern
// (megatron/core/models/hybrid/hybrid_layer_allocation.py), plus fusion:
//
//   M  Mamba2            G  Gated DeltaNet            *  softmax attention
//   D  DeepSeek sparse attention (DSA)                +  multi-head latent attention (MLA)
//   -  dense MLP         E  mixture of experts
//   |  pipeline stage boundary (stages may be empty: "||M*")
//   /  starts a multi-token-prediction (MTP) depth; every depth repeats one pattern
//   [..] fuses a sequence mixer and the channel mixer after it into one TransformerLayer
//        (strata's extension, as in Megatron-LM PR #4463)
//   W  sliding-window attention    C  compressed sparse attention    H  heavily compressed attention
//        (DeepSeek-V4's three shared-KV attention kinds; strata's extension, layers/shared_kv_attention.h)
//   A  strata's former symbol for MLA, still read (old configs and checkpoints carry it); `+` is printed
//
// Every symbol is one canonical layer (checkpoints number layers as if nothing were fused), so a
// model's num_layers is the number of symbols before the first '/', fused or not.
// `M*-M*-|E*[G-]/*-` is 10 canonical main layers in 9 TransformerLayers over 2 stages, and one
// MTP depth of 2 layers. This header needs no LibTorch, so the parser can be fuzzed alone.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "strata/core/config.h"  // kMaxLayers

namespace strata {

enum class SequenceMixerKind {
  Mamba2,
  Attention,
  GatedDeltaNet,
  DeepSeekSparseAttention,
  MultiLatentAttention,
  SlidingWindowAttention,
  CompressedSparseAttention,
  HeavilyCompressedAttention,
};
enum class ChannelMixerKind { Mlp, MoE };

char symbol(SequenceMixerKind kind);
char symbol(ChannelMixerKind kind);
std::string name(SequenceMixerKind kind);
std::string name(ChannelMixerKind kind);

// One TransformerLayer: a sequence mixer, a channel mixer, or both (fused).
struct PatternLayer {
  std::optional<SequenceMixerKind> sequence;
  std::optional<ChannelMixerKind> channel;
  int64_t first_canonical = 0;  // 0-based canonical index of its first half
  int stage = 0;                // pipeline stage (main layers) or MTP depth (MTP layers)

  int64_t num_canonical() const { return (sequence ? 1 : 0) + (channel ? 1 : 0); }
  // Canonical index of each half (valid only when that half is present).
  int64_t sequence_canonical() const { return first_canonical; }
  int64_t channel_canonical() const { return first_canonical + (sequence ? 1 : 0); }
  // "M", "-", or "[G-]" for a fused layer.
  std::string text() const;
  bool operator==(const PatternLayer&) const = default;
};

struct LayerPattern {
  std::string text;
  std::vector<PatternLayer> layers;      // main decoder, in order
  int num_stages = 1;                    // '|'-delimited segments of the main decoder, empty ones included
  bool explicit_stages = false;          // the pattern has '|'
  std::vector<std::vector<PatternLayer>> mtp;  // one layer list per MTP depth, all alike

  int64_t num_canonical_layers() const;  // main decoder symbols
  // The main decoder without '|': what the layers are, not where they run.
  std::string layers_text() const;
  // One MTP depth's pattern ("" without MTP).
  std::string mtp_text() const;
};

// Parses and validates, as Megatron's parse_hybrid_pattern does: the main part (before the first
// '/') is checked first, then the MTP parts must be identical text, then their symbols. "M*/" and
// "M*//" have no MTP depth; an empty main part ("", "/MM") parses to no main layers (whether a
// model may have none is for its builder to say). Errors quote the pattern with a caret under the
// bad position.
LayerPattern parse_layer_pattern(const std::string& text);

// How the main decoder's TransformerLayers split over pp_size pipeline ranks of vp_size virtual
// stages (model chunks) each: as the pattern's '|' say (their count must be pp_size * vp_size),
// else evenly, or with an uneven first and/or last rank holding first_stage_layers /
// last_stage_layers TransformerLayers over all its virtual stages (Megatron's
// --decoder-first-pipeline-num-layers / --decoder-last-pipeline-num-layers, which a pattern with
// '|' cannot take). Virtual stage v of rank r is stage v * pp_size + r (Megatron's interleaved
// order): each virtual round v takes, rank by rank, first_stage_layers / vp_size layers on rank 0,
// last_stage_layers / vp_size on the last rank, and the remaining layers' share on every other
// rank. pipeline_split.h derives a split from Megatron's flags.
struct PipelineSplit {
  int pp_size = 1;
  int vp_size = 1;
  std::optional<int64_t> first_stage_layers, last_stage_layers;
};

// Which layers of `pattern` pipeline rank `pp_rank` holds for its virtual stage `vp_stage`, each
// with `stage` set to its virtual stage. Errors name what does not split (and the flag behind it).
std::vector<PatternLayer> pipeline_slice(const LayerPattern& pattern, const PipelineSplit& split, int pp_rank,
                                         int vp_stage = 0);
// The same for a split without uneven ranks.
std::vector<PatternLayer> pipeline_slice(const LayerPattern& pattern, int pp_size, int pp_rank, int vp_size = 1,
                                         int vp_stage = 0);

}  // namespace strata
