#include "strata/model/layer_allocation.h"

#include <algorithm>
#include <cmath>

#include "strata/core/error.h"
#include "strata/core/layer_frequency.h"

namespace strata {

namespace {

void require_layer_count(int64_t num_layers) {
  if (num_layers <= 0) fail("TransformerConfig.num_layers = ", num_layers, ": expected a positive value");
  if (num_layers > kMaxLayers)
    fail("TransformerConfig.num_layers = ", num_layers, ": more than strata's limit of ", kMaxLayers, " layers");
}

// Python's round() of a float: to the nearest integer, halves to the even one (as nearbyint does in
// the default rounding mode).
int64_t python_round(double value) { return static_cast<int64_t>(std::nearbyint(value)); }

// One flag per layer from a set frequency whose values validate_layer_allocation checked: a list
// as given (one entry per layer), an integer N by `every_nth`.
std::vector<bool> expand(const LayerFrequency& f, int64_t num_layers, const char* field,
                         bool (*every_nth)(int64_t layer, int64_t n)) {
  std::vector<bool> out(num_layers);
  if (!f.explicit_list.empty()) {
    if (static_cast<int64_t>(f.explicit_list.size()) != num_layers)
      fail(field, " ", to_string(f), ": the list has ", f.explicit_list.size(),
           " entries, expected one per layer (num_layers = ", num_layers, ")");
    for (int64_t i = 0; i < num_layers; ++i) out[i] = f.explicit_list[i] == 1;
    return out;
  }
  for (int64_t i = 0; i < num_layers; ++i) out[i] = every_nth(i, *f.every);
  return out;
}

}  // namespace

std::string pattern_from_ratios(int64_t num_layers, double attention_ratio, double mlp_ratio) {
  require_layer_count(num_layers);
  if (!(attention_ratio >= 0.0 && attention_ratio <= 1.0 && mlp_ratio >= 0.0 && mlp_ratio <= 1.0 &&
        attention_ratio + mlp_ratio <= 1.0))
    fail("hybrid_attention_ratio = ", attention_ratio, ", hybrid_mlp_ratio = ", mlp_ratio,
         ": expected each in [0, 1] and their sum at most 1");
  const auto n = static_cast<size_t>(num_layers);
  std::string layers(n, 'M');
  // Attention: one section of Mamba2 layers more than there are attention layers, an attention
  // layer wherever the running section length drops below half a layer.
  const int64_t attention_count = python_round(static_cast<double>(num_layers) * attention_ratio);
  int64_t mamba_count = num_layers - attention_count;
  const double section = static_cast<double>(mamba_count) / static_cast<double>(attention_count + 1);
  double x = section;
  for (size_t i = 0; i < n; ++i) {
    if (x < 0.5) {
      layers[i] = '*';
      x += section;
    } else {
      x -= 1.0;
    }
  }
  // MLP: the same spreading over the Mamba2 layers alone.
  const int64_t mlp_count = python_round(static_cast<double>(num_layers) * mlp_ratio);
  if (mlp_count > 0) {
    mamba_count -= mlp_count;
    const double spacing = static_cast<double>(mamba_count) / static_cast<double>(mlp_count);
    x = spacing;
    for (size_t i = 0; i < n; ++i) {
      if (layers[i] != 'M') continue;
      if (x < 0.5) {
        layers[i] = '-';
        x += spacing;
      } else {
        x -= 1.0;
      }
    }
  }
  return layers;
}

std::string pattern_from_frequencies(const TransformerConfig& c) {
  validate_layer_allocation(c);
  require_layer_count(c.num_layers);
  const auto n = c.num_layers;
  std::vector<bool> linear(n, false), moe(n, false);
  if (is_linear_attention_variant(c.experimental_attention_variant)) {
    if (!c.linear_attention_freq.is_set())
      fail("TransformerConfig.experimental_attention_variant = '", c.experimental_attention_variant,
           "' without a hybrid_layer_pattern needs linear_attention_freq (which layers are Gated DeltaNet-2)");
    linear = expand(c.linear_attention_freq, n, "linear_attention_freq",
                    [](int64_t i, int64_t every) { return (i + 1) % every != 0; });
  }
  if (c.num_moe_experts != 0)
    moe = expand(c.moe_layer_freq, n, "moe_layer_freq", [](int64_t i, int64_t every) { return i % every == 0; });
  const char standard = c.experimental_attention_variant == "dsa" ? 'D' : c.multi_latent_attention ? '+' : '*';
  std::string out;
  out.reserve(4 * static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    out += '[';
    out += linear[i] ? 'G' : standard;
    out += moe[i] ? 'E' : '-';
    out += ']';
  }
  return out;
}

LayerPattern resolve_layer_pattern(const TransformerConfig& c) {
  validate_layer_allocation(c);
  LayerPattern pattern;
  if (!c.hybrid_layer_pattern.empty()) {
    pattern = parse_layer_pattern(c.hybrid_layer_pattern);
    if (pattern.num_canonical_layers() != c.num_layers)
      fail("layer pattern \"", c.hybrid_layer_pattern, "\" has ", pattern.num_canonical_layers(),
           " layers before any '/', but num_layers = ", c.num_layers,
           " (each symbol is one layer, fused or not; strata train and describe take the pattern's count with a "
           "warning, a config built in code must agree)");
  } else if (c.hybrid_attention_ratio > 0.0 || c.hybrid_mlp_ratio > 0.0) {
    pattern = parse_layer_pattern(pattern_from_ratios(c.num_layers, c.hybrid_attention_ratio, c.hybrid_mlp_ratio));
  } else {
    pattern = parse_layer_pattern(pattern_from_frequencies(c));
  }
  if (pattern.layers.empty())
    fail("layer pattern \"", pattern.text, "\" has no layers before the first '/': strata builds a model only with ",
         "main-decoder layers");
  for (const auto index : c.moe_hash_routed_layers) {
    const bool moe = std::any_of(pattern.layers.begin(), pattern.layers.end(), [&](const PatternLayer& layer) {
      return layer.channel == ChannelMixerKind::MoE && layer.channel_canonical() == index;
    });
    if (!moe)
      fail("TransformerConfig.moe_hash_routed_layers holds ", index, ", but canonical layer ", index, " of pattern \"",
           pattern.layers_text(), "\" is not a MoE ('E') layer: only a MoE's router can route by token id");
  }
  return pattern;
}

std::vector<std::vector<PatternLayer>> resolve_mtp_depths(const TransformerConfig& c) {
  const auto pattern = resolve_layer_pattern(c);
  const auto depths = static_cast<int64_t>(pattern.mtp.size());
  if (depths > 0) {
    if (c.mtp_num_layers != 0 && c.mtp_num_layers != depths)
      fail("TransformerConfig.mtp_num_layers = ", c.mtp_num_layers, " contradicts the layer pattern \"", pattern.text,
           "\", which has ", depths, " MTP depths after '/'");
    return pattern.mtp;
  }
  if (c.mtp_num_layers == 0) return {};
  if (!c.hybrid_layer_pattern.empty())
    fail("TransformerConfig.mtp_num_layers = ", c.mtp_num_layers, ": a hybrid model's MTP layers are the part of its ",
         "layer pattern after '/' (e.g. \"", pattern.text, "/*-\"); the pattern \"", pattern.text, "\" has none");
  // Megatron's GPT MTP: each depth is a layer like the decoder's last.
  auto last = pattern.layers.back();
  last.first_canonical = 0;
  std::vector<std::vector<PatternLayer>> out;
  for (int64_t d = 0; d < c.mtp_num_layers; ++d) {
    out.push_back(std::vector<PatternLayer>{last});
    out.back().front().stage = static_cast<int>(d);
  }
  return out;
}

ResolvedLayers resolve_layer_settings(TransformerConfig config) {
  ResolvedLayers out;
  auto& c = out.config;
  c = std::move(config);
  auto warn = [&](auto&&... parts) { out.warnings.push_back(cat(parts...)); };
  validate_layer_allocation(c);
  if (c.experimental_attention_variant == "gated_delta_net") {
    warn("experimental_attention_variant 'gated_delta_net' is deprecated in Megatron: read as 'gdn'");
    c.experimental_attention_variant = "gdn";
  }
  if (c.hybrid_attention_ratio > 0.0 || c.hybrid_mlp_ratio > 0.0) {
    c.hybrid_layer_pattern = pattern_from_ratios(c.num_layers, c.hybrid_attention_ratio, c.hybrid_mlp_ratio);
    warn("hybrid_attention_ratio ", c.hybrid_attention_ratio, " and hybrid_mlp_ratio ", c.hybrid_mlp_ratio,
         " are deprecated in Megatron: they give the hybrid_layer_pattern \"", c.hybrid_layer_pattern,
         "\"; give that pattern instead");
    c.hybrid_attention_ratio = c.hybrid_mlp_ratio = 0.0;
  }
  const bool moe_freq_given = c.moe_layer_freq != TransformerConfig{}.moe_layer_freq;
  const bool linear_freq_unused =
      c.linear_attention_freq.is_set() && !is_linear_attention_variant(c.experimental_attention_variant);
  if (!c.hybrid_layer_pattern.empty()) {
    const auto count = parse_layer_pattern(c.hybrid_layer_pattern).num_canonical_layers();
    if (c.num_layers != 0 && c.num_layers != count)
      warn("hybrid_layer_pattern \"", c.hybrid_layer_pattern, "\" has ", count, " layers: num_layers = ", c.num_layers,
           " is ignored, as in Megatron (the pattern's count wins)");
    c.num_layers = count;
    if (linear_freq_unused)
      warn("linear_attention_freq ", to_string(c.linear_attention_freq),
           " is ignored: hybrid_layer_pattern places every layer, as in Megatron");
    if (moe_freq_given)
      warn("moe_layer_freq ", to_string(c.moe_layer_freq), " is ignored: hybrid_layer_pattern places every layer, as in ",
           "Megatron");
  } else {
    if (linear_freq_unused)
      warn("linear_attention_freq ", to_string(c.linear_attention_freq), " is ignored: experimental_attention_variant is ",
           c.experimental_attention_variant.empty() ? "not set" : "'" + c.experimental_attention_variant + "'",
           ", not gdn, as in Megatron");
    if (moe_freq_given && c.num_moe_experts == 0)
      warn("moe_layer_freq ", to_string(c.moe_layer_freq),
           " is ignored: num_moe_experts is not set, so every layer has a dense MLP, as in Megatron");
  }
  out.pattern = resolve_layer_pattern(c);
  return out;
}

}  // namespace strata
