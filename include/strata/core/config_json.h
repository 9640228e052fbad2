#pragma once
// TransformerConfig <-> JSON, with Megatron's field names. Unknown fields are errors (a typo must
// not silently fall back to a default), and so are values of the wrong type; both name the field.
#include <nlohmann/json.hpp>

#include "strata/core/config.h"

namespace strata {

nlohmann::json to_json(const TransformerConfig& config);
// Applies the fields present in `json` on top of `base`. `source` (a path or "--flag") is quoted
// in errors.
// strata's former names of a few fields (enable_hyper_connections, num_residual_streams,
// mhc_recompute_num_layers) are read as the fields that replaced them (docs/megatron.md).
TransformerConfig config_from_json(const nlohmann::json& json, const std::string& source,
                                   TransformerConfig base = {});
// A config a checkpoint saved: it holds every field strata had when it was written, so a field it
// lacks was added since and reads as what strata did before that field existed.
TransformerConfig saved_config_from_json(const nlohmann::json& json, const std::string& source);

}  // namespace strata
