#include "layer_allocation_flags.h"

#include "flag_checks.h"
#include "strata/core/error.h"
#include "strata/core/layer_frequency.h"

namespace strata::tools {

namespace {

// Reads the flag's text as Megatron's moe_freq_type / la_freq_type do: an integer N or a list
// expression; a bad one is refused while the flags are parsed, with the position.
void add_frequency(CLI::App& cmd, const std::string& flag, std::optional<LayerFrequency>& out, const std::string& help) {
  cmd.add_option_function<std::string>(
         flag, [&out, flag](const std::string& text) { out = parse_layer_frequency(text, flag); }, help)
      ->check(CLI::Validator(
          [flag](std::string& text) -> std::string {
            try {
              const auto f = parse_layer_frequency(text, "value");
              if (f.every && *f.every < 1) return cat("value ", *f.every, ": expected a positive integer N or a list");
              return {};
            } catch (const Error& e) {
              return e.what();
            }
          },
          "N|LIST"));
}

}  // namespace

std::string LayerAllocationFlags::first_given() const {
  if (experimental_attention_variant) return "--experimental-attention-variant";
  if (linear_attention_freq) return "--linear-attention-freq";
  if (moe_layer_freq) return "--moe-layer-freq";
  if (multi_latent_attention) return "--multi-latent-attention";
  if (hybrid_attention_ratio) return "--hybrid-attention-ratio";
  if (hybrid_mlp_ratio) return "--hybrid-mlp-ratio";
  return "";
}

void add_layer_allocation_flags(CLI::App& cmd, LayerAllocationFlags& f) {
  cmd.add_option("--experimental-attention-variant", f.experimental_attention_variant,
                 "without a pattern: gdn (Gated DeltaNet where --linear-attention-freq says), gdn2 (Gated DeltaNet-2 "
                 "there) or dsa (DeepSeek sparse attention everywhere); with a pattern, gdn2 makes its 'G' layers "
                 "Gated DeltaNet-2; gated_delta_net is gdn's deprecated name")
      ->check(CLI::IsMember({"gdn", "gdn2", "dsa", "gated_delta_net"}));
  add_frequency(cmd, "--linear-attention-freq", f.linear_attention_freq,
                "with --experimental-attention-variant gdn or gdn2: N (every N-th layer softmax attention, the rest Gated "
                "DeltaNet) or a list expression such as \"([1]*3+[0]*1)*2\", 1 = Gated DeltaNet");
  add_frequency(cmd, "--moe-layer-freq", f.moe_layer_freq,
                "with experts: N (MoE on every N-th layer from the first; default 1) or a list expression such as "
                "\"([0]*3+[1]*5)\", 1 = MoE");
  cmd.add_flag("--multi-latent-attention", f.multi_latent_attention,
               "without a pattern: MLA ('+') where a layer has standard attention");
  const auto share = real_in(0.0, 1.0);
  cmd.add_option("--hybrid-attention-ratio", f.hybrid_attention_ratio,
                 "deprecated (Megatron): without a pattern, this share of num_layers is attention among Mamba2 layers")
      ->check(share);
  cmd.add_option("--hybrid-mlp-ratio", f.hybrid_mlp_ratio,
                 "deprecated (Megatron): without a pattern, this share of num_layers is MLP among Mamba2 layers")
      ->check(share);
}

void apply_layer_allocation_flags(const LayerAllocationFlags& f, bool pattern_flag_given, TransformerConfig& c) {
  if (f.experimental_attention_variant) c.experimental_attention_variant = *f.experimental_attention_variant;
  if (f.linear_attention_freq) c.linear_attention_freq = *f.linear_attention_freq;
  if (f.moe_layer_freq) c.moe_layer_freq = *f.moe_layer_freq;
  if (f.multi_latent_attention) c.multi_latent_attention = true;
  if (f.hybrid_attention_ratio) c.hybrid_attention_ratio = *f.hybrid_attention_ratio;
  if (f.hybrid_mlp_ratio) c.hybrid_mlp_ratio = *f.hybrid_mlp_ratio;
  const bool ratios_given = f.hybrid_attention_ratio.value_or(0.0) > 0.0 || f.hybrid_mlp_ratio.value_or(0.0) > 0.0;
  if (ratios_given && !pattern_flag_given) c.hybrid_layer_pattern.clear();
}

}  // namespace strata::tools
