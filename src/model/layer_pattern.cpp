#include "strata/model/layer_pattern.h"

#include "strata/core/error.h"

namespace strata {

namespace {

constexpr const char* kValidSymbols = "M * G D A (sequence mixers), - E (channel mixers), | / [ ]";

std::optional<SequenceMixerKind> sequence_kind(char c) {
  switch (c) {
    case 'M': return SequenceMixerKind::Mamba2;
    case '*': return SequenceMixerKind::Attention;
    case 'G': return SequenceMixerKind::GatedDeltaNet;
    case 'D': return SequenceMixerKind::DeepSeekSparseAttention;
    case 'A': return SequenceMixerKind::MultiLatentAttention;
    default: return std::nullopt;
  }
}

std::optional<ChannelMixerKind> channel_kind(char c) {
  switch (c) {
    case '-': return ChannelMixerKind::Mlp;
    case 'E': return ChannelMixerKind::MoE;
    default: return std::nullopt;
  }
}

std::string printable(char c) {
  if (c >= 0x20 && c < 0x7f) return std::string(1, c);
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
  return buf;
}

// Parser state for one pass over the text.
class PatternParser {
 public:
  explicit PatternParser(const std::string& text) : text_(text) { pattern_.text = text; }

  LayerPattern parse() {
    if (text_.empty()) error(0, "the pattern is empty");
    for (pos_ = 0; pos_ < text_.size(); ++pos_) step(text_[pos_]);
    if (bracket_) error(*bracket_, "'[' is never closed");
    if (in_mtp()) {
      if (pattern_.mtp.back().empty()) error(text_.size(), "empty MTP depth at the end of the pattern");
    } else if (!stage_has_layer_) {
      error(text_.size(), "empty pipeline stage at the end of the pattern");
    }
    check_mtp_depths_repeat();
    pattern_.num_stages = stage_ + 1;
    return std::move(pattern_);
  }

 private:
  [[noreturn]] void error(size_t pos, const std::string& what) const {
    fail("layer pattern \"", text_, "\": ", what, " (position ", pos, ")\n  ", text_, "\n  ", std::string(pos, ' '), "^");
  }

  bool in_mtp() const { return !pattern_.mtp.empty(); }
  std::vector<PatternLayer>& current_list() { return in_mtp() ? pattern_.mtp.back() : pattern_.layers; }

  void step(char c) {
    switch (c) {
      case '[': return open_bracket();
      case ']': return close_bracket();
      case '|': return stage_boundary();
      case '/': return mtp_boundary();
      default: return mixer(c);
    }
  }

  void open_bracket() {
    if (bracket_) error(pos_, "nested '[' (brackets fuse two mixers and cannot nest)");
    bracket_ = pos_;
    fused_ = {};
  }

  void close_bracket() {
    if (!bracket_) error(pos_, "']' without a matching '['");
    if (!fused_.sequence && !fused_.channel) error(*bracket_, "empty brackets '[]'");
    if (!fused_.channel)
      error(*bracket_, "brackets hold a single mixer: nothing to fuse (write the symbol without brackets)");
    add_layer(fused_);
    bracket_.reset();
  }

  void stage_boundary() {
    if (bracket_) error(pos_, "'|' inside brackets: a fused layer cannot span pipeline stages");
    if (in_mtp()) error(pos_, "'|' in the MTP part: the MTP layers run on the last pipeline stage");
    if (!stage_has_layer_) error(pos_, "empty pipeline stage");
    ++stage_;
    stage_has_layer_ = false;
  }

  void mtp_boundary() {
    if (bracket_) error(pos_, "'/' inside brackets: the MTP part starts between layers");
    if (pattern_.layers.empty()) error(pos_, "the MTP part must follow the main decoder's layers");
    if (!in_mtp() && !stage_has_layer_) error(pos_, "empty pipeline stage before the MTP part");
    if (in_mtp() && pattern_.mtp.back().empty()) error(pos_, "empty MTP depth");
    pattern_.mtp.emplace_back();
    mtp_starts_.push_back(pos_);
  }

  void mixer(char c) {
    auto sequence = sequence_kind(c);
    auto channel = channel_kind(c);
    if (!sequence && !channel) error(pos_, "unknown symbol '" + printable(c) + "' (valid: " + kValidSymbols + ")");
    if (!bracket_) {
      add_layer(PatternLayer{.sequence = sequence, .channel = channel});
      return;
    }
    if (sequence) {
      if (fused_.sequence || fused_.channel)
        error(pos_, "a bracket fuses one sequence mixer followed by one channel mixer; found a second sequence mixer");
      fused_.sequence = sequence;
    } else {
      if (fused_.channel) error(pos_, "a bracket holds two channel mixers");
      if (!fused_.sequence) error(pos_, "a bracket starts with a channel mixer; a fused layer is a sequence mixer then a channel mixer");
      fused_.channel = channel;
    }
  }

  void add_layer(PatternLayer layer) {
    auto& list = current_list();
    const int64_t next = list.empty() ? 0 : list.back().first_canonical + list.back().num_canonical();
    layer.first_canonical = next;
    layer.stage = in_mtp() ? static_cast<int>(pattern_.mtp.size()) - 1 : stage_;
    list.push_back(layer);
    if (!in_mtp()) stage_has_layer_ = true;
  }

  void check_mtp_depths_repeat() const {
    for (size_t d = 1; d < pattern_.mtp.size(); ++d) {
      const auto& first = pattern_.mtp.front();
      const auto& depth = pattern_.mtp[d];
      bool same = first.size() == depth.size();
      for (size_t i = 0; same && i < first.size(); ++i)
        same = first[i].sequence == depth[i].sequence && first[i].channel == depth[i].channel;
      if (!same) error(mtp_starts_[d], "MTP depth " + std::to_string(d + 1) + " differs from depth 1 (every MTP depth repeats one pattern)");
    }
  }

  const std::string& text_;
  LayerPattern pattern_;
  size_t pos_ = 0;
  int stage_ = 0;
  bool stage_has_layer_ = false;
  std::optional<size_t> bracket_;
  PatternLayer fused_;
  std::vector<size_t> mtp_starts_;
};

}  // namespace

char symbol(SequenceMixerKind kind) {
  switch (kind) {
    case SequenceMixerKind::Mamba2: return 'M';
    case SequenceMixerKind::Attention: return '*';
    case SequenceMixerKind::GatedDeltaNet: return 'G';
    case SequenceMixerKind::DeepSeekSparseAttention: return 'D';
    case SequenceMixerKind::MultiLatentAttention: return 'A';
  }
  return '?';
}

char symbol(ChannelMixerKind kind) { return kind == ChannelMixerKind::Mlp ? '-' : 'E'; }

std::string name(SequenceMixerKind kind) {
  switch (kind) {
    case SequenceMixerKind::Mamba2: return "Mamba2";
    case SequenceMixerKind::Attention: return "attention";
    case SequenceMixerKind::GatedDeltaNet: return "Gated DeltaNet";
    case SequenceMixerKind::DeepSeekSparseAttention: return "DeepSeek sparse attention";
    case SequenceMixerKind::MultiLatentAttention: return "multi-latent attention";
  }
  return "?";
}

std::string name(ChannelMixerKind kind) { return kind == ChannelMixerKind::Mlp ? "MLP" : "MoE"; }

int64_t LayerPattern::num_canonical_layers() const {
  return layers.empty() ? 0 : layers.back().first_canonical + layers.back().num_canonical();
}

std::string LayerPattern::layers_text() const {
  std::string out;
  for (const auto& layer : layers) {
    const bool fused = layer.sequence && layer.channel;
    if (fused) out += '[';
    if (layer.sequence) out += symbol(*layer.sequence);
    if (layer.channel) out += symbol(*layer.channel);
    if (fused) out += ']';
  }
  return out;
}

LayerPattern parse_layer_pattern(const std::string& text, std::optional<int64_t> num_layers) {
  // Every layer takes at least one symbol, a fused one four, with a separator between stages.
  constexpr size_t kMaxPatternLength = 8 * kMaxLayers;
  if (text.size() > kMaxPatternLength)
    fail("layer pattern of ", text.size(), " characters: longer than strata's limit of ", kMaxPatternLength,
         " (its models have at most ", kMaxLayers, " layers)");
  auto pattern = PatternParser(text).parse();
  if (pattern.num_canonical_layers() > kMaxLayers)
    fail("layer pattern has ", pattern.num_canonical_layers(), " layers, more than strata's limit of ", kMaxLayers);
  if (num_layers && *num_layers != pattern.num_canonical_layers())
    fail("layer pattern \"", text, "\" has ", pattern.num_canonical_layers(), " layers before any '/', but num_layers = ",
         *num_layers, " (each symbol is one layer, fused or not)");
  pattern.explicit_stages = pattern.num_stages > 1;
  return pattern;
}

namespace {
std::vector<bool> expand_frequency(int64_t num_layers, const LayerFrequency& f, const char* field,
                                   bool (*rule)(int64_t layer, int64_t every)) {
  std::vector<bool> out(num_layers);
  if (!f.explicit_list.empty()) {
    if (static_cast<int64_t>(f.explicit_list.size()) != num_layers)
      fail(field, ": the list has ", f.explicit_list.size(), " entries, expected one per layer (num_layers = ", num_layers, ")");
    for (int64_t i = 0; i < num_layers; ++i) {
      const auto v = f.explicit_list[i];
      if (v != 0 && v != 1) fail(field, "[", i, "] = ", v, ": expected 0 or 1");
      out[i] = v == 1;
    }
    return out;
  }
  const auto every = f.every.value_or(1);
  if (every <= 0) fail(field, " = ", every, ": expected a positive integer");
  for (int64_t i = 0; i < num_layers; ++i) out[i] = rule(i, every);
  return out;
}
}  // namespace

std::string pattern_from_frequencies(int64_t num_layers, const LayerFrequency& linear_attention_freq,
                                     const LayerFrequency& moe_layer_freq) {
  if (num_layers <= 0 || num_layers > kMaxLayers)
    fail("num_layers = ", num_layers, ": expected 1 to strata's limit of ", kMaxLayers, " layers");
  // Megatron: linear attention except every N-th layer; MoE on every N-th layer starting at 0.
  // Without a setting, every layer is softmax attention / dense MLP.
  auto linear = linear_attention_freq.every || !linear_attention_freq.explicit_list.empty()
                    ? expand_frequency(num_layers, linear_attention_freq, "linear_attention_freq",
                                       [](int64_t i, int64_t n) { return (i + 1) % n != 0; })
                    : std::vector<bool>(num_layers, false);
  auto moe = moe_layer_freq.every || !moe_layer_freq.explicit_list.empty()
                 ? expand_frequency(num_layers, moe_layer_freq, "moe_layer_freq",
                                    [](int64_t i, int64_t n) { return i % n == 0; })
                 : std::vector<bool>(num_layers, false);
  std::string out;
  for (int64_t i = 0; i < num_layers; ++i) {
    out += '[';
    out += linear[i] ? 'G' : '*';
    out += moe[i] ? 'E' : '-';
    out += ']';
  }
  return out;
}

LayerPattern resolve_layer_pattern(const TransformerConfig& config) {
  if (!config.hybrid_layer_pattern.empty()) return parse_layer_pattern(config.hybrid_layer_pattern, config.num_layers);
  return parse_layer_pattern(
      pattern_from_frequencies(config.num_layers, config.linear_attention_freq, config.moe_layer_freq));
}

namespace {

// The TransformerLayers each rank holds in one virtual round (all ranks' virtual stage v), after
// checking that the split works out (Megatron's checks of uneven pipelines).
std::vector<int64_t> layers_per_rank_and_round(const LayerPattern& pattern, const PipelineSplit& split) {
  const int pp = split.pp_size, vp = split.vp_size;
  const auto layers = static_cast<int64_t>(pattern.layers.size());
  if (!split.first_stage_layers && !split.last_stage_layers) {
    if (layers % (pp * vp) != 0)
      fail("layer pattern \"", pattern.text, "\": ", layers, " layers do not split evenly over ", pp * vp,
           " pipeline stages; mark the stages with '|'");
    return std::vector<int64_t>(pp, layers / (pp * vp));
  }
  int middle_ranks = pp;
  int64_t middle_layers = layers;
  auto take = [&](const std::optional<int64_t>& count, const char* flag) {
    if (!count) return;
    if (pattern.explicit_stages)
      fail("layer pattern \"", pattern.text, "\" marks its pipeline stages with '|', so ", flag,
           " cannot be given: the pattern already defines the pipeline layout");
    if (pp < 2) fail(flag, " ", *count, ": an uneven first or last stage needs at least 2 pipeline stages");
    if (*count < 1) fail(flag, " ", *count, ": expected at least 1 layer");
    if (*count % vp != 0)
      fail(flag, " ", *count, ": the layers of that stage must split evenly over its ", vp, " virtual stages");
    middle_layers -= *count;
    --middle_ranks;
  };
  take(split.first_stage_layers, "--decoder-first-pipeline-num-layers");
  take(split.last_stage_layers, "--decoder-last-pipeline-num-layers");
  if (middle_layers < 0 || (middle_layers > 0) != (middle_ranks > 0))
    fail("layer pattern \"", pattern.text, "\" has ", layers, " layers; the uneven first and last stages leave ",
         middle_layers, " for the ", middle_ranks, " pipeline stages between them (expected ",
         middle_ranks > 0 ? "a positive number" : "none", ")");
  if (middle_ranks > 0 && middle_layers % (static_cast<int64_t>(middle_ranks) * vp) != 0)
    fail("layer pattern \"", pattern.text, "\": the ", middle_layers,
         " layers between the uneven first and last stages do not split evenly over ", middle_ranks,
         " pipeline stages x ", vp, " virtual stages");
  const int64_t middle = middle_ranks > 0 ? middle_layers / (static_cast<int64_t>(middle_ranks) * vp) : 0;
  std::vector<int64_t> out(pp, middle);
  if (split.first_stage_layers) out.front() = *split.first_stage_layers / vp;
  if (split.last_stage_layers) out.back() = *split.last_stage_layers / vp;
  return out;
}

}  // namespace

std::vector<PatternLayer> pipeline_slice(const LayerPattern& pattern, const PipelineSplit& split, int pp_rank,
                                         int vp_stage) {
  const int pp_size = split.pp_size, vp_size = split.vp_size;
  if (pp_size <= 0 || vp_size <= 0) fail("pipeline: pp_size = ", pp_size, ", vp_size = ", vp_size, ": expected positive sizes");
  if (pp_rank < 0 || pp_rank >= pp_size) fail("pipeline: pp_rank = ", pp_rank, " outside [0, ", pp_size, ")");
  if (vp_stage < 0 || vp_stage >= vp_size) fail("pipeline: vp_stage = ", vp_stage, " outside [0, ", vp_size, ")");
  const int stages = pp_size * vp_size;
  const int stage = vp_stage * pp_size + pp_rank;
  std::vector<PatternLayer> out;
  if (pattern.explicit_stages && !split.first_stage_layers && !split.last_stage_layers) {
    if (pattern.num_stages != stages)
      fail("layer pattern \"", pattern.text, "\" has ", pattern.num_stages, " pipeline stages ('|'), but pp_size * vp_size = ",
           pp_size, " * ", vp_size, " = ", stages);
    for (const auto& layer : pattern.layers)
      if (layer.stage == stage) out.push_back(layer);
    return out;
  }
  const auto per_rank = layers_per_rank_and_round(pattern, split);
  int64_t round = 0;
  for (auto n : per_rank) round += n;
  int64_t begin = vp_stage * round;
  for (int r = 0; r < pp_rank; ++r) begin += per_rank[r];
  for (int64_t i = begin; i < begin + per_rank[pp_rank]; ++i) {
    out.push_back(pattern.layers[i]);
    out.back().stage = stage;
  }
  return out;
}

std::vector<PatternLayer> pipeline_slice(const LayerPattern& pattern, int pp_size, int pp_rank, int vp_size,
                                         int vp_stage) {
  return pipeline_slice(pattern, PipelineSplit{.pp_size = pp_size, .vp_size = vp_size}, pp_rank, vp_stage);
}

}  // namespace strata
