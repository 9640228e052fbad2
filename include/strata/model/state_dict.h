#pragma once
// Named tensors of a module (parameters and buffers, dotted names as the module tree gives them)
// and strict loading: a checkpoint with missing, unexpected, wrongly shaped or wrongly typed
// tensors is refused with one error that lists every problem.
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

namespace strata {

std::map<std::string, at::Tensor> state_dict(const torch::nn::Module& module);

// Copies `tensors` into the module's parameters and buffers, moving them to the target's device.
// Dtypes must match or convert exactly (core/exact_conversion.h: bfloat16 into float32 does,
// float64 into float32 does not). `source` (a path or description) is quoted in errors.
void load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                     const std::string& source);

// The same strict copy into any set of named target tensors (e.g. a model's canonical names).
void load_named_tensors(const std::map<std::string, at::Tensor>& targets,
                        const std::map<std::string, at::Tensor>& tensors, const std::string& source);

// Throws the one error strict loading gives when any of the lists is non-empty: "cannot load
// <source> into the model:" and each list with its count.
void refuse_checkpoint_if_mismatched(const std::string& source, const std::vector<std::string>& missing,
                                     const std::vector<std::string>& unexpected,
                                     const std::vector<std::string>& mismatched,
                                     const std::vector<std::string>& wrongly_typed = {});

}  // namespace strata
