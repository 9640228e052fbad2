#include "strata/core/rotary_scaling.h"

#include <cmath>

#include "strata/core/error.h"

namespace strata {

namespace {

constexpr RotaryScalingKind kKinds[] = {RotaryScalingKind::None, RotaryScalingKind::Linear, RotaryScalingKind::Yarn,
                                        RotaryScalingKind::Llama3};

void require_positive(double value, const std::string& where, const char* field, RotaryScalingKind kind) {
  if (!(value > 0.0) || !std::isfinite(value))
    fail(where, ".", field, " = ", value, " (", to_string(kind), "): expected a positive, finite value");
}

void require_finite(double value, const std::string& where, const char* field, RotaryScalingKind kind) {
  if (!std::isfinite(value)) fail(where, ".", field, " = ", value, " (", to_string(kind), "): expected a finite value");
}

}  // namespace

std::string to_string(RotaryScalingKind kind) {
  switch (kind) {
    case RotaryScalingKind::None: return "none";
    case RotaryScalingKind::Linear: return "linear";
    case RotaryScalingKind::Yarn: return "yarn";
    case RotaryScalingKind::Llama3: return "llama3";
  }
  return "?";
}

RotaryScalingKind parse_rotary_scaling_kind(const std::string& value, const std::string& field) {
  for (auto kind : kKinds)
    if (to_string(kind) == value) return kind;
  fail(field, ": unknown rotary scaling '", value, "' (expected none, linear, yarn or llama3)");
}

void validate(const RotaryScaling& s, const std::string& where) {
  if (s.kind == RotaryScalingKind::None) return;
  require_positive(s.factor, where, "factor", s.kind);
  if (s.kind == RotaryScalingKind::Linear) return;
  if (s.original_max_position_embeddings <= 0)
    fail(where, ".original_max_position_embeddings = ", s.original_max_position_embeddings, " (", to_string(s.kind),
         "): expected the positive pre-training context length");
  if (s.kind == RotaryScalingKind::Yarn) {
    require_positive(s.beta_fast, where, "beta_fast", s.kind);
    require_positive(s.beta_slow, where, "beta_slow", s.kind);
    require_finite(s.mscale, where, "mscale", s.kind);
    require_finite(s.mscale_all_dim, where, "mscale_all_dim", s.kind);
    if (s.attention_factor) require_positive(*s.attention_factor, where, "attention_factor", s.kind);
    return;
  }
  require_positive(s.low_freq_factor, where, "low_freq_factor", s.kind);
  require_positive(s.high_freq_factor, where, "high_freq_factor", s.kind);
  if (!(s.high_freq_factor > s.low_freq_factor))
    fail(where, ".high_freq_factor = ", s.high_freq_factor, " (llama3): expected more than low_freq_factor = ",
         s.low_freq_factor, " (the smooth band lies between them)");
}

}  // namespace strata
