#pragma once
// strata -> HF: a model as the HF architecture that computes the same function, its config.json
// and its checkpoint in HF's names and layouts (each architecture's TensorMap, run backwards).
//
// Which architecture: each one strata exports (qwen3, qwen3_next, nemotron_h, deepseek_v32, in
// that order) states the model in its own config (its *_hf_config), the config.json written for
// it is read back and mapped to strata's config as import would, and the first one whose result
// makes exactly this model (model/config_differences.h) is taken. A model none of them makes is
// refused, with what does not fit in each.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "strata/hf/tensor_map.h"
#include "strata/io/hf_config_writer.h"
#include "strata/model/language_model.h"
#include "strata/text/tokenizer_files.h"

namespace strata::hf {

struct HfExportPlan {
  std::string model_type;
  nlohmann::json config_json;
  TensorMap tensor_map;
};

// The settings strata keeps beside the model, for config.json: initialisation, dropout, and the
// dtype of weights of `weights_dtype`; the special token ids are the caller's (a tokenizer's).
io::HfConfigExtras hf_config_extras(const TransformerConfig& config, at::ScalarType weights_dtype);

HfExportPlan plan_hf_export(const TransformerConfig& config, const io::HfConfigExtras& extras);

// The model's tensors under HF's names and layouts, on the CPU. Every canonical tensor must have a
// place in the checkpoint.
std::map<std::string, at::Tensor> hf_tensors(const LanguageModel& model, const HfExportPlan& plan);

// Writes the HF folder `out`, which must be missing or empty: config.json, the checkpoint
// (model.safetensors; shards and their index above 5 GB) and the tokenizer's files copied beside
// them. Written in a temporary folder beside `out`, then renamed into place.
void write_hf_folder(const std::filesystem::path& out, const HfExportPlan& plan,
                     const std::map<std::string, at::Tensor>& tensors, const std::vector<text::TokenizerFile>& tokenizer);

}  // namespace strata::hf
