// strata export: a strata checkpoint as an HF transformers folder (config.json, safetensors and
// the tokenizer's files), in the HF architecture that computes the same model (hf/export.h).
#include <cstdio>

#include "commands.h"
#include "model_source.h"
#include "strata/core/error.h"
#include "strata/hf/export.h"
#include "strata/train/train_checkpoint.h"
#include "tokenizer_flags.h"

namespace strata::tools {

namespace {

namespace fs = std::filesystem;

struct ExportFlags {
  std::string load, out;
  TokenizerFlags tokenizer;
};

// The tokenizer to write beside the model, as --tokenizer-type and --tokenizer-model: the flags',
// else the checkpoint's.
std::optional<std::pair<std::string, fs::path>> tokenizer_to_export(const ExportFlags& f) {
  if (f.tokenizer.given()) {
    if (f.tokenizer.type.empty()) f.tokenizer.open();  // refuses the half-given pair
    return std::pair{f.tokenizer.type, fs::path(f.tokenizer.model)};
  }
  const auto dir = train::checkpoint_tokenizer_dir(f.load);
  const auto type = dir ? text::tokenizer_type_in(*dir) : std::nullopt;
  if (!type) return std::nullopt;
  return std::pair{*type, *dir};
}

int run_export(const ExportFlags& f) {
  auto model = load_model({f.load, ""});
  const auto& config = model->config();
  auto extras = hf::hf_config_extras(config, model->canonical_state_dict().begin()->second.scalar_type());
  std::vector<text::TokenizerFile> tokenizer_files;
  if (const auto tokenizer_source = tokenizer_to_export(f)) {
    const auto& [type, where] = *tokenizer_source;
    const auto tokenizer = text::open_tokenizer(type, where);
    if (tokenizer->vocab_size() > config.vocab_size)
      fail("the tokenizer in ", where.string(), " has ", tokenizer->vocab_size(),
           " tokens, more than the model's vocab_size ", config.vocab_size);
    extras.bos_token_id = tokenizer->bos_id();
    extras.eos_token_id = tokenizer->eos_id();
    tokenizer_files = text::tokenizer_files(type, where);
  }
  const auto plan = hf::plan_hf_export(config, extras);
  const auto tensors = hf::hf_tensors(*model, plan);
  hf::write_hf_folder(f.out, plan, tensors, tokenizer_files);
  std::string files = "config.json, model.safetensors";
  for (const auto& file : tokenizer_files) files += ", " + file.name;
  std::printf("exported %s (iteration %lld) as %s to %s: %s (%zu tensors)\n", f.load.c_str(),
              static_cast<long long>(*train::latest_iteration(f.load)), plan.model_type.c_str(), f.out.c_str(),
              files.c_str(), tensors.size());
  return 0;
}

}  // namespace

Subcommand add_export(CLI::App& app) {
  auto f = std::make_shared<ExportFlags>();
  auto* cmd = app.add_subcommand("export", "write a strata checkpoint as an HF transformers model folder");
  cmd->add_option("--load", f->load, "strata checkpoint folder (as written by strata train --save)")->required();
  cmd->add_option("--hf", f->out, "the HF folder to write (new or empty): config.json, model.safetensors, tokenizer")
      ->required();
  add_tokenizer_flags(*cmd, f->tokenizer);
  cmd->footer("Without --tokenizer-type / --tokenizer-model, the tokenizer the run trained with (saved in its checkpoint) "
              "is written beside the model. A model no HF architecture makes is refused, with what does not fit each.");
  return {cmd, [f] { return run_export(*f); }};
}

}  // namespace strata::tools
