#pragma once
// Scaled RoPE: how the rotary frequencies are stretched so a model runs past the context it was
// pre-trained on. The kinds and field names are HF's (rope_parameters' rope_type "linear", "yarn",
// "llama3"); layers/rotary_frequencies.h computes them. Each field matters only to the kinds named
// beside it.
#include <cstdint>
#include <optional>
#include <string>

namespace strata {

enum class RotaryScalingKind { None, Linear, Yarn, Llama3 };

std::string to_string(RotaryScalingKind kind);  // "none", "linear", "yarn", "llama3"
// `field` names the setting in errors, which list the valid values.
RotaryScalingKind parse_rotary_scaling_kind(const std::string& value, const std::string& field);

struct RotaryScaling {
  RotaryScalingKind kind = RotaryScalingKind::None;
  // linear, yarn, llama3: how many times longer the context is than in pre-training.
  double factor = 1.0;
  // yarn, llama3: the pre-training context length, which places the frequency bands.
  int64_t original_max_position_embeddings = 0;
  // yarn: frequencies that turn more than beta_fast times over the original context keep their
  // value, those that turn fewer than beta_slow times are divided by factor, a linear ramp between.
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;  // yarn: round the ramp's ends outward to whole dimensions
  // yarn: cos and sin are multiplied by attention_factor; unset, it is
  // yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim) when both are non-zero, else
  // yarn_mscale(factor, 1). MLA also multiplies its softmax scale by
  // yarn_mscale(factor, mscale_all_dim)^2 when mscale_all_dim is non-zero (DeepSeek-V3).
  double mscale = 0.0;
  double mscale_all_dim = 0.0;
  std::optional<double> attention_factor;
  // llama3: wavelengths shorter than original / high_freq_factor keep their frequency, those
  // longer than original / low_freq_factor are divided by factor, a smooth blend between.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
};

// Checks the fields `scaling.kind` uses; errors name `where` (e.g. "TransformerConfig.rotary_scaling"),
// the field, its value and what was expected.
void validate(const RotaryScaling& scaling, const std::string& where);

}  // namespace strata
