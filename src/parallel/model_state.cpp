#include "strata/parallel/model_state.h"

#include <set>
#include <sstream>

#include "strata/core/error.h"
#include "strata/io/safetensors.h"
#include "strata/model/state_dict.h"
#include "strata/parallel/collectives.h"

namespace strata::parallel {

namespace {

bool is_qk_norm(const std::string& name) {
  return name.find(".q_layernorm.") != std::string::npos || name.find(".k_layernorm.") != std::string::npos;
}

// "name\tdtype\tsizes" per tensor, one per line: what a stage tells the others about its tensors.
std::string describe_tensors(const std::map<std::string, at::Tensor>& tensors) {
  std::ostringstream out;
  for (const auto& [name, t] : tensors) {
    out << name << '\t' << static_cast<int>(t.scalar_type());
    for (auto size : t.sizes()) out << '\t' << size;
    out << '\n';
  }
  return out.str();
}

struct TensorDescription {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> sizes;
};

std::vector<TensorDescription> parse_descriptions(const std::string& text) {
  std::vector<TensorDescription> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    TensorDescription d;
    std::string field;
    std::getline(fields, d.name, '\t');
    std::getline(fields, field, '\t');
    d.dtype = static_cast<at::ScalarType>(std::stoi(field));
    while (std::getline(fields, field, '\t')) d.sizes.push_back(std::stoll(field));
    out.push_back(std::move(d));
  }
  return out;
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

}  // namespace

std::map<std::string, at::Tensor> exchange_over_pipeline(std::map<std::string, at::Tensor> mine, const Group& pp) {
  if (!pp || pp->getSize() == 1) return mine;
  const auto stages = all_gather_strings(describe_tensors(mine), pp, "exchange of tensor names between stages");
  std::map<std::string, at::Tensor> all;
  for (int stage = 0; stage < pp->getSize(); ++stage) {
    for (const auto& d : parse_descriptions(stages[stage])) {
      auto t = stage == pp->getRank() ? mine.at(d.name).contiguous() : at::empty(d.sizes, at::TensorOptions(d.dtype));
      broadcast_(t, stage, pp, "broadcast of stage " + std::to_string(stage) + "'s " + d.name);
      all.emplace(d.name, t);
    }
  }
  return all;
}

std::map<std::string, ParameterPlacement> parameter_placements(const LanguageModel& model) {
  // Shards as the owning modules declare them, keyed by the tensor they describe.
  std::map<const c10::TensorImpl*, ShardSpec> shard_of_tensor;
  const auto runtime = state_dict(model);
  for (const auto& item : model.named_modules()) {
    const auto* sharded = dynamic_cast<const ShardedModule*>(item.value().get());
    if (!sharded) continue;
    for (const auto& [name, spec] : sharded->shard_specs()) {
      const auto full_name = item.key().empty() ? name : item.key() + "." + name;
      auto it = runtime.find(full_name);
      if (it == runtime.end()) fail("module '", item.key(), "' declares a split of '", name, "', which it does not hold");
      shard_of_tensor.emplace(it->second.unsafeGetTensorImpl(), spec);
    }
  }
  const auto& pg = model.process_groups();
  std::map<std::string, ParameterPlacement> out;
  for (const auto& [name, tensor] : model.canonical_state_dict()) {
    ParameterPlacement p;
    if (auto it = shard_of_tensor.find(tensor.unsafeGetTensorImpl()); it != shard_of_tensor.end()) p.shard = it->second;
    const bool in_decoder = name.rfind("decoder.", 0) == 0;
    p.sum_grad_over_tp = pg.tp_size() > 1 && !p.split_over_tp() && in_decoder && (pg.splits_sequence() || is_qk_norm(name));
    out.emplace(name, p);
  }
  return out;
}

std::map<std::string, at::Tensor> gather_named_shards(const std::map<std::string, at::Tensor>& local,
                                                      const std::map<std::string, ParameterPlacement>& placements) {
  std::map<std::string, at::Tensor> whole;
  for (const auto& [name, tensor] : local) {
    auto it = placements.find(name);
    if (it == placements.end()) fail("gather of '", name, "': the model has no tensor of that name");
    const auto& p = it->second;
    whole.emplace(name, p.shard ? gather_shards(tensor.detach(), *p.shard, name) : tensor.detach());
  }
  return whole;
}

std::map<std::string, at::Tensor> split_named_tensors(const std::map<std::string, at::Tensor>& whole,
                                                      const std::map<std::string, ParameterPlacement>& placements) {
  std::map<std::string, at::Tensor> local;
  for (const auto& [name, tensor] : whole) {
    auto it = placements.find(name);
    if (it == placements.end()) fail("split of '", name, "': the model has no tensor of that name");
    local.emplace(name, it->second.shard ? shard_of(tensor, *it->second.shard, name) : tensor);
  }
  return local;
}

std::map<std::string, at::Tensor> gather_canonical_state_dict(const LanguageModel& model) {
  auto stage = gather_named_shards(model.canonical_state_dict(), parameter_placements(model));
  return exchange_over_pipeline(std::move(stage), model.process_groups().pp);
}

void load_canonical_state_dict(LanguageModel& model, const std::map<std::string, at::Tensor>& whole,
                               const std::string& source) {
  const auto placements = parameter_placements(model);
  // Which names the whole model holds: every stage tells the others its own.
  std::string mine;
  for (const auto& [name, _] : placements) mine += name + "\n";
  std::set<std::string> model_names;
  for (const auto& stage : all_gather_strings(mine, model.process_groups().pp, "exchange of tensor names between stages")) {
    std::istringstream lines(stage);
    for (std::string name; std::getline(lines, name);) model_names.insert(name);
  }
  std::vector<std::string> missing, unexpected;
  for (const auto& name : model_names)
    if (!whole.count(name)) missing.push_back(name);
  for (const auto& [name, _] : whole)
    if (!model_names.count(name)) unexpected.push_back(name);
  std::vector<std::string> mismatched;
  std::map<std::string, at::Tensor> local;
  if (missing.empty() && unexpected.empty()) {
    for (const auto& [name, p] : placements) {
      const auto& tensor = whole.at(name);
      // Only shapes that split evenly can be split; a wrong whole shape is reported as such.
      try {
        local.emplace(name, p.shard ? shard_of(tensor, *p.shard, name) : tensor);
      } catch (const Error&) {
        mismatched.push_back(cat(name, " (checkpoint ", shape_of(tensor), ", which does not split over ",
                                 p.shard->size(), " ranks)"));
      }
    }
  }
  refuse_checkpoint_if_mismatched(source, missing, unexpected, mismatched);
  load_named_tensors(model.canonical_state_dict(), local, source);
}

void save_parallel_model_weights(const LanguageModel& model, const std::filesystem::path& dir) {
  auto whole = gather_canonical_state_dict(model);
  const auto& world = model.process_groups().world;
  if (ProcessGroups::rank(world) == 0) {
    std::map<std::string, at::Tensor> cpu;
    for (const auto& [name, t] : whole) cpu.emplace(name, t.detach().cpu());
    std::filesystem::create_directories(dir);
    io::save_checkpoint(dir, cpu);
  }
  // Nobody reads the folder before it is complete.
  barrier(world, "barrier after saving " + dir.string());
}

void load_parallel_model_weights(LanguageModel& model, const std::filesystem::path& dir) {
  load_canonical_state_dict(model, io::CheckpointReader::open(dir).load_all(), dir.string());
}

}  // namespace strata::parallel
