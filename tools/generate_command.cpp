// strata generate: continue a prompt with a model from a strata training checkpoint or an HF
// checkpoint folder. Prompts are text (one token per byte, the tokenizer `strata train` uses for
// text) or explicit token ids.
#include <cstdio>
#include <sstream>

#include "commands.h"
#include "flag_checks.h"
#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/core/parse_number.h"
#include "strata/hf/architecture.h"
#include "strata/infer/generate.h"
#include "strata/model/build_model.h"
#include "strata/model/checkpoint.h"
#include "strata/train/train_checkpoint.h"

namespace strata::tools {

namespace {

struct GenerateFlags {
  infer::SamplingOptions sampling;
  std::string load, hf;
  std::string prompt, prompt_tokens;
  std::string device = "cpu";
};

std::shared_ptr<LanguageModel> load_model(const GenerateFlags& f) {
  if (f.load.empty() == f.hf.empty()) fail("give exactly one of --load (strata checkpoint) and --hf (HF model folder)");
  if (!f.hf.empty()) {
    // An hf-check fixture folder holds the model in model/; a plain HF folder holds config.json.
    std::filesystem::path dir = f.hf;
    if (!std::filesystem::exists(dir / "config.json") && std::filesystem::exists(dir / "model" / "config.json"))
      dir /= "model";
    return hf::load_hf_model(dir).model;
  }
  if (!train::latest_iteration(f.load)) fail("--load ", f.load, ": ", train::describe_non_checkpoint(f.load));
  auto config =
      std::make_shared<const TransformerConfig>(saved_config_from_json(train::checkpoint_config(f.load), f.load));
  auto model = build_language_model(config);
  load_model_weights(*model, train::latest_checkpoint_dir(f.load));
  return model;
}

std::vector<int64_t> parse_token_list(const std::string& text) {
  std::vector<int64_t> tokens;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    try {
      tokens.push_back(parse_int64(item, "token"));
    } catch (const Error&) {
      fail("--prompt-tokens '", text, "': '", item, "' is not an integer (expected comma-separated token ids)");
    }
  }
  return tokens;
}

std::vector<int64_t> prompt_tokens(const GenerateFlags& f, int64_t vocab_size) {
  if (f.prompt.empty() == f.prompt_tokens.empty()) fail("give exactly one of --prompt (text) and --prompt-tokens (ids)");
  std::vector<int64_t> tokens;
  if (!f.prompt.empty()) {
    for (unsigned char byte : f.prompt) tokens.push_back(byte);
  } else {
    tokens = parse_token_list(f.prompt_tokens);
  }
  for (auto t : tokens)
    if (t < 0 || t >= vocab_size)
      fail(f.prompt.empty() ? "--prompt-tokens" : "--prompt", ": token ", t, " is outside the model's vocabulary [0, ",
           vocab_size, ")", f.prompt.empty() ? "" : "; text prompts need a byte-level model (vocabulary 256)");
  return tokens;
}

}  // namespace

Subcommand add_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  auto& s = f->sampling;
  auto* cmd = app.add_subcommand("generate", "continue a prompt (greedy, or temperature / top-k / top-p sampling)");
  cmd->add_option("--load", f->load, "strata checkpoint folder (as written by strata train --save)");
  cmd->add_option("--hf", f->hf, "HF model folder (config.json + safetensors)");
  cmd->add_option("--prompt", f->prompt, "prompt text, one token per byte");
  cmd->add_option("--prompt-tokens", f->prompt_tokens, "prompt token ids, comma-separated");
  cmd->add_option("--max-new-tokens", s.max_new_tokens, "tokens to generate")->check(integer_at_least(1));
  cmd->add_option("--temperature", s.temperature, "0: greedy")->check(real_at_least(0.0));
  cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0: off)")->check(integer_at_least(0));
  cmd->add_option("--top-p", s.top_p, "keep the smallest set of tokens with this much probability (1: off)")
      ->check(real_in(0.0, 1.0));
  cmd->add_option("--seed", s.seed, "sampling seed")->check(unsigned_integer());
  cmd->add_option("--device", f->device, "cpu or cuda");
  return {cmd, [f] {
            auto model = load_model(*f);
            model->to(parse_device(f->device));
            const int64_t vocab = model->config().vocab_size;
            const auto prompt = prompt_tokens(*f, vocab);
            const auto generated = infer::generate(*model, prompt, f->sampling);
            std::string ids;
            for (auto t : generated) ids += cat(ids.empty() ? "" : ",", t);
            std::printf("tokens: %s\n", ids.c_str());
            if (vocab == 256) {
              std::string text(generated.begin(), generated.end());
              std::printf("text: %s%s\n", f->prompt.c_str(), text.c_str());
            }
            return 0;
          }};
}

}  // namespace strata::tools
