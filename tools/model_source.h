#pragma once
// --load DIR (a strata checkpoint folder) or --hf DIR (an HF model folder, or an hf-check fixture
// folder holding one in model/): the model that generate and eval run, and the tokenizer that came
// with it.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "strata/model/language_model.h"
#include "strata/text/tokenizer.h"

namespace strata::tools {

struct ModelSource {
  std::string load, hf;
};

void add_model_source_flags(CLI::App& cmd, ModelSource& source);

// Refuses both flags or neither; a --load folder without a checkpoint says what it holds.
std::shared_ptr<LanguageModel> load_model(const ModelSource& source);

// The folder of the model's own tokenizer files: the HF folder (or its model/) when it holds a
// tokenizer.json or tokenizer.model, or the checkpoint's tokenizer/ (train_checkpoint.h).
std::optional<std::filesystem::path> model_tokenizer_dir(const ModelSource& source);

// The tokenizer in that folder, null when there is none.
std::unique_ptr<text::Tokenizer> open_model_tokenizer(const std::filesystem::path& folder);

}  // namespace strata::tools
