#pragma once
// An HF architecture strata can build: its TransformerConfig, its model (from typed specs) and
// the tensor map between HF's checkpoint and strata's canonical names.
#include <filesystem>
#include <memory>

#include "strata/hf/tensor_map.h"
#include "strata/io/hf_config.h"
#include "strata/model/language_model.h"

namespace strata::hf {

struct HfModel {
  std::string model_type;
  std::shared_ptr<const TransformerConfig> config;
  std::shared_ptr<LanguageModel> model;
  TensorMap tensor_map;
};

// What an HF config makes in strata, without building it: the model's config and the tensor map.
struct HfLayout {
  std::string model_type;
  TransformerConfig config;
  TensorMap tensor_map;
};
// Errors as build_hf_model.
HfLayout hf_layout(const io::HfConfig& config);

// Builds the model for an HF config (randomly initialised). Architectures strata cannot build
// yet fail with "architecture <model_type> is not supported yet" and the list of those it can.
HfModel build_hf_model(const io::HfConfig& config);

// Reads <dir>/config.json, builds the model and loads <dir>'s safetensors checkpoint into it.
HfModel load_hf_model(const std::filesystem::path& dir);

// The folder that holds config.json: `dir` itself, or `dir`/model for an hf-check fixture folder.
std::filesystem::path hf_model_dir(const std::filesystem::path& dir);

}  // namespace strata::hf
