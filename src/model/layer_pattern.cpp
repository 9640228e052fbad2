#include "strata/model/layer_pattern.h"

#include <algorithm>
#include <cstdio>

#include "strata/core/error.h"

namespace strata {

namespace {

constexpr const char* kValidSymbols = "M G * D + W C H (sequence mixers; A is read as +), - E (channel mixers), | / [ ]";

std::optional<SequenceMixerKind> sequence_kind(char c) {
  switch (c) {
    case 'M': return SequenceMixerKind::Mamba2;
    case '*': return SequenceMixerKind::Attention;
    case 'G': return SequenceMixerKind::GatedDeltaNet;
    case 'D': return SequenceMixerKind::DeepSeekSparseAttention;
    case '+':
    case 'A': return SequenceMixerKind::MultiLatentAttention;
    case 'W': return SequenceMixerKind::SlidingWindowAttention;
    case 'C': return SequenceMixerKind::CompressedSparseAttention;
    case 'H': return SequenceMixerKind::HeavilyCompressedAttention;
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

bool is_latent_attention(char c) { return c == '+' || c == 'A' || c == 'D'; }

// The layers of one part of the pattern: the main decoder (before the first '/') or one MTP depth.
struct Part {
  std::vector<PatternLayer> layers;
  int segments = 1;  // '|'-delimited
};

// One pass over the text, in the order Megatron's parse_hybrid_pattern checks it.
class PatternParser {
 public:
  explicit PatternParser(const std::string& text) : text_(text) {}

  LayerPattern parse() {
    LayerPattern pattern;
    pattern.text = text_;
    std::vector<size_t> slashes;
    for (size_t i = 0; i < text_.size(); ++i)
      if (text_[i] == '/') slashes.push_back(i);
    const size_t main_end = slashes.empty() ? text_.size() : slashes.front();
    auto main = parse_part(0, main_end, /*main_part=*/true);
    check_attention_kinds(0, main_end, "");
    pattern.layers = std::move(main.layers);
    pattern.num_stages = main.segments;
    pattern.explicit_stages = main.segments > 1;
    if (!slashes.empty()) pattern.mtp = parse_mtp(slashes);
    // Megatron checks the main part and the MTP part each on its own; the rule is about the model.
    check_attention_kinds(0, text_.size(), " (the main decoder's layers and the MTP layers together)");
    return pattern;
  }

 private:
  [[noreturn]] void error(size_t pos, const std::string& what) const {
    fail("layer pattern \"", text_, "\": ", what, " (position ", pos, ")\n  ", text_, "\n  ", std::string(pos, ' '), "^");
  }

  // The MTP parts follow the slashes. All empty ("M*/", "M*//"): no MTP. Otherwise every part is
  // one depth and must read exactly as the first (compared as text, before their symbols are).
  std::vector<std::vector<PatternLayer>> parse_mtp(const std::vector<size_t>& slashes) {
    auto part_end = [&](size_t k) { return k + 1 < slashes.size() ? slashes[k + 1] : text_.size(); };
    bool all_empty = true;
    for (size_t k = 0; k < slashes.size(); ++k) all_empty = all_empty && part_end(k) == slashes[k] + 1;
    if (all_empty) return {};
    const auto first = text_.substr(slashes[0] + 1, part_end(0) - slashes[0] - 1);
    for (size_t k = 1; k < slashes.size(); ++k) {
      const auto depth = text_.substr(slashes[k] + 1, part_end(k) - slashes[k] - 1);
      if (depth != first)
        error(slashes[k] + 1, cat("every MTP depth must repeat one pattern: depth 1 is \"", first, "\", depth ", k + 1,
                                  " is \"", depth, "\""));
    }
    auto depth = parse_part(slashes[0] + 1, part_end(0), /*main_part=*/false);
    check_attention_kinds(slashes[0] + 1, part_end(0), " (an MTP depth)");
    std::vector<std::vector<PatternLayer>> mtp(slashes.size(), depth.layers);
    for (size_t d = 0; d < mtp.size(); ++d)
      for (auto& layer : mtp[d]) layer.stage = static_cast<int>(d);
    return mtp;
  }

  Part parse_part(size_t begin, size_t end, bool main_part) {
    Part part;
    std::optional<size_t> bracket;
    PatternLayer fused;
    for (size_t pos = begin; pos < end; ++pos) {
      const char c = text_[pos];
      if (c == '[') {
        if (bracket) error(pos, "nested '[' (brackets fuse two mixers and cannot nest)");
        bracket = pos;
        fused = {};
      } else if (c == ']') {
        if (!bracket) error(pos, "']' without a matching '['");
        if (!fused.sequence && !fused.channel) error(*bracket, "empty brackets '[]'");
        if (!fused.channel)
          error(*bracket, "brackets hold a single mixer: nothing to fuse (write the symbol without brackets)");
        add_layer(part, fused);
        bracket.reset();
      } else if (c == '|') {
        if (!main_part)
          error(pos, "'|' is not a valid layer symbol in the MTP part: the MTP layers run on the last pipeline stage");
        if (bracket) error(pos, "'|' inside brackets: a fused layer cannot span pipeline stages");
        ++part.segments;
      } else {
        mixer(part, pos, bracket.has_value(), fused);
      }
    }
    if (bracket) {
      if (end < text_.size()) error(end, "'/' inside brackets: the MTP part starts between layers");
      error(*bracket, "'[' is never closed");
    }
    return part;
  }

  void mixer(Part& part, size_t pos, bool in_bracket, PatternLayer& fused) const {
    const char c = text_[pos];
    auto sequence = sequence_kind(c);
    auto channel = channel_kind(c);
    if (!sequence && !channel)
      error(pos, cat("'", printable(c), "' is not a valid layer symbol (valid: ", kValidSymbols, ")"));
    if (!in_bracket) {
      add_layer(part, PatternLayer{.sequence = sequence, .channel = channel});
      return;
    }
    if (sequence) {
      if (fused.sequence || fused.channel)
        error(pos, "a bracket fuses one sequence mixer followed by one channel mixer; found a second sequence mixer");
      fused.sequence = sequence;
    } else {
      if (fused.channel) error(pos, "a bracket holds two channel mixers");
      if (!fused.sequence)
        error(pos, "a bracket starts with a channel mixer; a fused layer is a sequence mixer then a channel mixer");
      fused.channel = channel;
    }
  }

  static void add_layer(Part& part, PatternLayer layer) {
    const auto& list = part.layers;
    layer.first_canonical = list.empty() ? 0 : list.back().first_canonical + list.back().num_canonical();
    layer.stage = part.segments - 1;
    part.layers.push_back(layer);
  }

  // Megatron refuses softmax attention beside MLA or DSA in one model: '*' layers take the rotary
  // embedding the model builds, and the model builds none when it has MLA (which, like DSA, rotates
  // with its own decoupled RoPE).
  void check_attention_kinds(size_t begin, size_t end, const std::string& where) const {
    std::optional<size_t> attention, latent;
    for (size_t pos = begin; pos < end; ++pos) {
      if (text_[pos] == '*' && !attention) attention = pos;
      if (is_latent_attention(text_[pos]) && !latent) latent = pos;
    }
    if (attention && latent)
      error(std::max(*attention, *latent),
            "softmax attention '*' and MLA-based attention ('+' or 'D') in one model" + where +
                ": not supported, as in Megatron ('*' rotates with the model's RoPE, '+' and 'D' with their own)");
  }

  const std::string& text_;
};

}  // namespace

char symbol(SequenceMixerKind kind) {
  switch (kind) {
    case SequenceMixerKind::Mamba2: return 'M';
    case SequenceMixerKind::Attention: return '*';
    case SequenceMixerKind::GatedDeltaNet: return 'G';
    case SequenceMixerKind::DeepSeekSparseAttention: return 'D';
    case SequenceMixerKind::MultiLatentAttention: return '+';
    case SequenceMixerKind::SlidingWindowAttention: return 'W';
    case SequenceMixerKind::CompressedSparseAttention: return 'C';
    case SequenceMixerKind::HeavilyCompressedAttention: return 'H';
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
    case SequenceMixerKind::SlidingWindowAttention: return "sliding-window attention";
    case SequenceMixerKind::CompressedSparseAttention: return "compressed sparse attention";
    case SequenceMixerKind::HeavilyCompressedAttention: return "heavily compressed attention";
  }
  return "?";
}

std::string name(ChannelMixerKind kind) { return kind == ChannelMixerKind::Mlp ? "MLP" : "MoE"; }

std::string PatternLayer::text() const {
  std::string out;
  if (sequence) out += symbol(*sequence);
  if (channel) out += symbol(*channel);
  return sequence && channel ? "[" + out + "]" : out;
}

int64_t LayerPattern::num_canonical_layers() const {
  return layers.empty() ? 0 : layers.back().first_canonical + layers.back().num_canonical();
}

std::string LayerPattern::layers_text() const {
  std::string out;
  for (const auto& layer : layers) out += layer.text();
  return out;
}

std::string LayerPattern::mtp_text() const {
  std::string out;
  if (!mtp.empty())
    for (const auto& layer : mtp.front()) out += layer.text();
  return out;
}

LayerPattern parse_layer_pattern(const std::string& text) {
  // Every layer takes at least one symbol, a fused one four, with a separator between stages.
  constexpr size_t kMaxPatternLength = 8 * kMaxLayers;
  if (text.size() > kMaxPatternLength)
    fail("layer pattern of ", text.size(), " characters: longer than strata's limit of ", kMaxPatternLength,
         " (its models have at most ", kMaxLayers, " layers)");
  auto pattern = PatternParser(text).parse();
  if (pattern.num_canonical_layers() > kMaxLayers)
    fail("layer pattern has ", pattern.num_canonical_layers(), " layers, more than strata's limit of ", kMaxLayers);
  int64_t mtp_layers = 0;
  for (const auto& depth : pattern.mtp)
    mtp_layers += depth.empty() ? 0 : depth.back().first_canonical + depth.back().num_canonical();
  if (mtp_layers > kMaxLayers)
    fail("layer pattern has ", mtp_layers, " MTP layers, more than strata's limit of ", kMaxLayers);
  return pattern;
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
