#include "strata/hf/rope_scaling.h"

#include "strata/core/error.h"

namespace strata::hf {

RotaryScaling rotary_scaling_from_hf(const io::RopeParameters& rope, std::string_view arch) {
  RotaryScaling s;
  const auto& type = rope.rope_type;
  if (type == "default") return s;
  if (type == "linear") s.kind = RotaryScalingKind::Linear;
  else if (type == "yarn") s.kind = RotaryScalingKind::Yarn;
  else if (type == "llama3") s.kind = RotaryScalingKind::Llama3;
  else
    fail(arch, " config: rope_type \"", type, "\" (", rope.origin, ") is not supported; expected default, linear, ",
         "yarn or llama3 (strata implements no other scaled RoPE)");
  // hf_config.cpp has checked that the fields each type needs are present.
  s.factor = rope.factor.value_or(s.factor);
  s.original_max_position_embeddings = rope.original_max_position_embeddings.value_or(0);
  s.beta_fast = rope.beta_fast.value_or(s.beta_fast);
  s.beta_slow = rope.beta_slow.value_or(s.beta_slow);
  s.truncate = rope.truncate.value_or(s.truncate);
  s.mscale = rope.mscale.value_or(s.mscale);
  s.mscale_all_dim = rope.mscale_all_dim.value_or(s.mscale_all_dim);
  s.attention_factor = rope.attention_factor;
  s.low_freq_factor = rope.low_freq_factor.value_or(s.low_freq_factor);
  s.high_freq_factor = rope.high_freq_factor.value_or(s.high_freq_factor);
  validate(s, cat(arch, " config: ", rope.origin));
  return s;
}

io::RopeParameters rope_parameters_from(double rope_theta, double partial_rotary_factor, const RotaryScaling& s) {
  io::RopeParameters rope;
  rope.rope_theta = rope_theta;
  rope.partial_rotary_factor = partial_rotary_factor;
  const RotaryScaling defaults;
  switch (s.kind) {
    case RotaryScalingKind::None: break;
    case RotaryScalingKind::Linear:
      rope.rope_type = "linear";
      rope.factor = s.factor;
      break;
    case RotaryScalingKind::Yarn:
      rope.rope_type = "yarn";
      rope.factor = s.factor;
      rope.original_max_position_embeddings = s.original_max_position_embeddings;
      rope.beta_fast = s.beta_fast;
      rope.beta_slow = s.beta_slow;
      if (s.truncate != defaults.truncate) rope.truncate = s.truncate;
      if (s.mscale != 0.0) rope.mscale = s.mscale;
      if (s.mscale_all_dim != 0.0) rope.mscale_all_dim = s.mscale_all_dim;
      rope.attention_factor = s.attention_factor;
      break;
    case RotaryScalingKind::Llama3:
      rope.rope_type = "llama3";
      rope.factor = s.factor;
      rope.original_max_position_embeddings = s.original_max_position_embeddings;
      rope.low_freq_factor = s.low_freq_factor;
      rope.high_freq_factor = s.high_freq_factor;
      break;
  }
  return rope;
}

}  // namespace strata::hf
