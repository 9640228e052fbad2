#pragma once
// HF's RoPE type and scaling fields as strata's RotaryScaling, with HF's defaults for the fields a
// file leaves out (YaRN: beta_fast 32, beta_slow 1, truncate true, attention_factor derived).
#include <string_view>

#include "strata/core/rotary_scaling.h"
#include "strata/io/hf_config.h"

namespace strata::hf {

// "default" is no scaling; "linear", "yarn" and "llama3" map field by field. Any other type
// ("dynamic", "longrope", ...) fails, naming it; `arch` ("qwen3", ...) begins every error.
RotaryScaling rotary_scaling_from_hf(const io::RopeParameters& rope, std::string_view arch);

// The inverse, for export: HF's RoPE fields for strata's theta, rotated fraction and scaling. The
// fields that hold HF's default and that HF's files
// leave out (YaRN's truncate true, an unset mscale) are left out.
io::RopeParameters rope_parameters_from(double rope_theta, double partial_rotary_factor, const RotaryScaling& scaling);

}  // namespace strata::hf
