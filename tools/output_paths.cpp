#include "output_paths.h"

#include <filesystem>

#include "run_log.h"
#include "strata/core/error.h"
#include "train_flags.h"

namespace strata::tools {

namespace fs = std::filesystem;

namespace {
bool same_file(const std::string& a, const std::string& b) {
  std::error_code error;
  if (fs::equivalent(a, b, error)) return true;
  return fs::weakly_canonical(a, error) == fs::weakly_canonical(b, error);
}
}  // namespace

void refuse_output_over_input(const std::string& output_flag, const std::string& output,
                              const std::vector<std::pair<std::string, std::string>>& inputs) {
  if (output.empty()) return;
  for (const auto& [flag, input] : inputs)
    if (!input.empty() && same_file(output, input))
      fail(output_flag, " ", output, ": is the input ", flag, " ", input, "; writing it would destroy the input");
}

void refuse_outputs_over_inputs(const TrainFlags& f) {
  std::vector<std::pair<std::string, std::string>> inputs = {{"--model-config", f.model_config}};
  for (const auto& path : f.data.data_path)  // a file, or an indexed dataset's prefix
    for (const char* suffix : {"", ".bin", ".idx"}) inputs.emplace_back("--data-path", path + suffix);
  refuse_output_over_input("--metrics", f.options.metrics, inputs);
  if (!f.options.metrics.empty())
    refuse_output_over_input("--metrics (its config.json)", run_config_path(f.options.metrics).string(), inputs);
}

}  // namespace strata::tools
