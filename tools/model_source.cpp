#include "model_source.h"

#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/hf/architecture.h"
#include "strata/model/build_model.h"
#include "strata/model/checkpoint.h"
#include "strata/text/tokenizer_files.h"
#include "strata/train/train_checkpoint.h"

namespace strata::tools {

namespace fs = std::filesystem;

void add_model_source_flags(CLI::App& cmd, ModelSource& source) {
  cmd.add_option("--load", source.load, "strata checkpoint folder (as written by strata train --save)");
  cmd.add_option("--hf", source.hf, "HF model folder (config.json + safetensors, and its tokenizer when it has one)");
}

std::shared_ptr<LanguageModel> load_model(const ModelSource& source) {
  if (source.load.empty() == source.hf.empty())
    fail("give exactly one of --load (strata checkpoint) and --hf (HF model folder)");
  if (!source.hf.empty()) return hf::load_hf_model(hf::hf_model_dir(source.hf)).model;
  if (!train::latest_iteration(source.load))
    fail("--load ", source.load, ": ", train::describe_non_checkpoint(source.load));
  auto config =
      std::make_shared<const TransformerConfig>(saved_config_from_json(train::checkpoint_config(source.load), source.load));
  auto model = build_language_model(config);
  load_model_weights(*model, train::latest_checkpoint_dir(source.load));
  return model;
}

std::optional<fs::path> model_tokenizer_dir(const ModelSource& source) {
  if (!source.load.empty()) return train::checkpoint_tokenizer_dir(source.load);
  for (const fs::path& dir : {fs::path(source.hf), hf::hf_model_dir(source.hf)})
    if (text::tokenizer_type_in(dir)) return dir;
  return std::nullopt;
}

std::unique_ptr<text::Tokenizer> open_model_tokenizer(const fs::path& folder) {
  const auto type = text::tokenizer_type_in(folder);
  return type ? text::open_tokenizer(*type, folder) : nullptr;
}

}  // namespace strata::tools
