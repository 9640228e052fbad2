#include "strata/model/state_dict.h"

#include <sstream>

#include "strata/core/error.h"
#include "strata/core/exact_conversion.h"

namespace strata {

std::map<std::string, at::Tensor> state_dict(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out.emplace(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out.emplace(item.key(), item.value());
  return out;
}

namespace {
std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}
}  // namespace

void refuse_checkpoint_if_mismatched(const std::string& source, const std::vector<std::string>& missing,
                                     const std::vector<std::string>& unexpected,
                                     const std::vector<std::string>& mismatched,
                                     const std::vector<std::string>& wrongly_typed) {
  if (missing.empty() && unexpected.empty() && mismatched.empty() && wrongly_typed.empty()) return;
  std::ostringstream msg;
  msg << "cannot load " << source << " into the model:";
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    msg << "\n  " << what << " (" << names.size() << "):";
    for (const auto& n : names) msg << "\n    " << n;
  };
  list("missing tensors", missing);
  list("unexpected tensors", unexpected);
  list("wrongly shaped tensors", mismatched);
  list("wrongly typed tensors (a dtype that does not convert exactly)", wrongly_typed);
  throw Error(msg.str());
}

void load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                     const std::string& source) {
  load_named_tensors(state_dict(module), tensors, source);
}

void load_named_tensors(const std::map<std::string, at::Tensor>& targets,
                        const std::map<std::string, at::Tensor>& tensors, const std::string& source) {
  std::vector<std::string> missing, unexpected, mismatched, wrongly_typed;
  for (const auto& [name, target] : targets) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      continue;
    }
    const at::Tensor& tensor = it->second;
    if (tensor.sizes() != target.sizes()) {
      mismatched.push_back(cat(name, " (checkpoint ", shape_of(tensor), ", model ", shape_of(target), ")"));
    }
    if (!converts_exactly(tensor.scalar_type(), target.scalar_type())) {
      wrongly_typed.push_back(cat(name, " (checkpoint ", tensor.scalar_type(), ", model ", target.scalar_type(), ")"));
    }
  }
  for (const auto& [name, tensor] : tensors)
    if (!targets.count(name)) unexpected.push_back(name);
  refuse_checkpoint_if_mismatched(source, missing, unexpected, mismatched, wrongly_typed);
  at::NoGradGuard no_grad;
  for (const auto& [name, target] : targets) const_cast<at::Tensor&>(target).copy_(tensors.at(name));
}

}  // namespace strata
