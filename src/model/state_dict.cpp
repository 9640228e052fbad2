#include "strata/model/state_dict.h"

#include <sstream>

#include "strata/core/error.h"

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
                                     const std::vector<std::string>& mismatched) {
  if (missing.empty() && unexpected.empty() && mismatched.empty()) return;
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
  throw Error(msg.str());
}

void load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                     const std::string& source) {
  load_named_tensors(state_dict(module), tensors, source);
}

void load_named_tensors(const std::map<std::string, at::Tensor>& targets,
                        const std::map<std::string, at::Tensor>& tensors, const std::string& source) {
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [name, target] : targets) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != target.sizes()) {
      mismatched.push_back(cat(name, " (checkpoint ", shape_of(it->second), ", model ", shape_of(target), ")"));
    }
  }
  for (const auto& [name, tensor] : tensors)
    if (!targets.count(name)) unexpected.push_back(name);
  refuse_checkpoint_if_mismatched(source, missing, unexpected, mismatched);
  at::NoGradGuard no_grad;
  for (const auto& [name, target] : targets) const_cast<at::Tensor&>(target).copy_(tensors.at(name));
}

}  // namespace strata
