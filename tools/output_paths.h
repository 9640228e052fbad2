#pragma once
// Output files must never overwrite the command's inputs (`plot m.jsonl -o m.jsonl`, a --metrics
// file that is the --data-path, ...).
#include <string>
#include <utility>
#include <vector>

namespace strata::tools {

struct TrainFlags;

// Refuses when `output` (named by `output_flag`) is one of `inputs` (flag, path): the same path or
// the same file through another name.
void refuse_output_over_input(const std::string& output_flag, const std::string& output,
                              const std::vector<std::pair<std::string, std::string>>& inputs);

// `strata train`'s outputs (--metrics and the config.json beside it) against its inputs.
void refuse_outputs_over_inputs(const TrainFlags& flags);

}  // namespace strata::tools
