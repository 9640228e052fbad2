#pragma once
// The configuration a run resolved to (flags, what a resumed checkpoint restored, the model config
// and the data), printed at its start as Megatron prints its arguments, and written as config.json
// beside its metrics file.
#include <filesystem>
#include <string>

#include "strata/core/config.h"
#include "strata/train/data.h"

namespace strata::tools {

struct TrainFlags;

// config.json in the folder of the metrics file.
std::filesystem::path run_config_path(const std::string& metrics);

// Prints the configuration; writes config.json when flags name a metrics file. An existing
// config.json that is not a strata run configuration (a model config, an HF config) is refused.
void log_run_configuration(const TrainFlags& flags, const TransformerConfig& config, const train::DataSource& data,
                           const std::string& origin);

}  // namespace strata::tools
