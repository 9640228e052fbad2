#include "strata/hf/export.h"

#include <unistd.h>

#include <functional>
#include <set>

#include "strata/core/error.h"
#include "strata/hf/architecture.h"
#include "strata/hf/deepseek_v32.h"
#include "strata/hf/nemotron_h.h"
#include "strata/hf/qwen3.h"
#include "strata/hf/qwen3_next.h"
#include "strata/io/atomic_file.h"
#include "strata/io/safetensors.h"
#include "strata/model/config_differences.h"

namespace strata::hf {

namespace fs = std::filesystem;

namespace {

struct Candidate {
  const char* model_type;
  std::function<io::HfConfig(const TransformerConfig&)> hf_config;
};

const std::vector<Candidate>& candidates() {
  static const std::vector<Candidate> all = {
      {"qwen3", [](const TransformerConfig& c) -> io::HfConfig { return qwen3_hf_config(c); }},
      {"qwen3_next", [](const TransformerConfig& c) -> io::HfConfig { return qwen3_next_hf_config(c); }},
      {"nemotron_h", [](const TransformerConfig& c) -> io::HfConfig { return nemotron_h_hf_config(c); }},
      {"deepseek_v32", [](const TransformerConfig& c) -> io::HfConfig { return deepseek_v32_hf_config(c); }}};
  return all;
}

std::string listed(const std::vector<ConfigDifference>& differences, const std::string& model_type) {
  std::string out;
  for (const auto& d : differences)
    out += cat(out.empty() ? "" : "; ", d.field, " is ", d.ours, " in this model, ", d.theirs, " in ", model_type);
  return out;
}

// The part of an error that says what it is about, without the architecture it begins with.
std::string without_prefix(const std::string& message, const std::string& model_type) {
  const auto prefix = model_type + ": ";
  return message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
}

}  // namespace

io::HfConfigExtras hf_config_extras(const TransformerConfig& config, at::ScalarType weights_dtype) {
  io::HfConfigExtras extras;
  extras.initializer_range = config.init_method_std;
  extras.attention_dropout = config.attention_dropout;
  extras.hidden_dropout = config.hidden_dropout;
  switch (weights_dtype) {
    case at::kFloat: extras.dtype = "float32"; break;
    case at::kBFloat16: extras.dtype = "bfloat16"; break;
    case at::kHalf: extras.dtype = "float16"; break;
    default: fail("export to HF: weights of dtype ", weights_dtype, "; expected float32, bfloat16 or float16");
  }
  return extras;
}

HfExportPlan plan_hf_export(const TransformerConfig& config, const io::HfConfigExtras& extras) {
  std::string reasons;
  for (const auto& candidate : candidates()) {
    try {
      auto json = io::hf_config_json(candidate.hf_config(config), extras);
      // Read back as import reads a file, so what is written is what HF and strata will load.
      auto layout = hf_layout(io::parse_hf_config(json, cat("the ", candidate.model_type, " config.json for export")));
      const auto differences = model_differences(config, layout.config);
      if (differences.empty()) return {candidate.model_type, std::move(json), std::move(layout.tensor_map)};
      reasons += cat("\n  ", candidate.model_type, ": ", listed(differences, candidate.model_type));
    } catch (const Error& e) {
      reasons += cat("\n  ", candidate.model_type, ": ", without_prefix(e.what(), candidate.model_type));
    }
  }
  throw Error(cat("the model (layers ", canonical_layer_symbols(config),
                  ") is no HF architecture strata exports; what does not fit each:", reasons));
}

std::map<std::string, at::Tensor> hf_tensors(const LanguageModel& model, const HfExportPlan& plan) {
  std::map<std::string, at::Tensor> canonical;
  for (const auto& [name, tensor] : model.canonical_state_dict()) canonical.emplace(name, tensor.detach().cpu());
  std::set<std::string> placed;
  for (const auto& rule : plan.tensor_map.rules()) placed.insert(rule.name);
  for (const auto& [name, tensor] : canonical)
    if (!placed.count(name))
      fail("export to ", plan.model_type, ": strata tensor ", name, " has no place in the HF checkpoint");
  return plan.tensor_map.export_hf(canonical);
}

void write_hf_folder(const fs::path& out, const HfExportPlan& plan, const std::map<std::string, at::Tensor>& tensors,
                     const std::vector<text::TokenizerFile>& tokenizer) {
  std::error_code error;
  if (fs::exists(out, error) && (!fs::is_directory(out, error) || !fs::is_empty(out, error)))
    fail(out.string(), ": exists and is not an empty folder; export into a new folder");
  const auto parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  fs::create_directories(parent);
  const auto temp = parent / cat(out.filename().string(), ".tmp-", ::getpid());
  fs::remove_all(temp);
  fs::create_directories(temp);
  try {
    io::write_file_atomically(temp / "config.json", plan.config_json.dump(2) + "\n");
    io::save_checkpoint(temp, tensors);
    for (const auto& file : tokenizer) fs::copy_file(file.source, temp / file.name);
    io::sync_directory(temp);
    fs::remove(out, error);  // an empty folder gives way
    fs::rename(temp, out);
    io::sync_directory(parent);
  } catch (...) {
    fs::remove_all(temp, error);
    throw;
  }
}

}  // namespace strata::hf
