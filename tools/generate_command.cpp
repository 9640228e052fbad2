// strata generate: continue a prompt with a model from a strata training checkpoint or an HF
// checkpoint folder. A text prompt goes through a tokenizer (--tokenizer-type / --tokenizer-model,
// or the one that came with the model: an HF folder's own, the one a checkpoint's run trained
// with) and the continuation streams out as text; a strata checkpoint of vocabulary 256 without a
// tokenizer reads text as bytes (how strata train reads text). Explicit token ids (--prompt-tokens) need no tokenizer.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "flag_checks.h"
#include "strata/core/error.h"
#include "strata/core/parse_number.h"
#include "strata/hf/architecture.h"
#include "strata/infer/generate.h"
#include "strata/text/text_stream.h"
#include "model_source.h"
#include "tokenizer_flags.h"

namespace strata::tools {

namespace {

namespace fs = std::filesystem;

struct GenerateFlags {
  infer::SamplingOptions sampling;
  ModelSource model;
  std::string prompt, prompt_tokens;
  std::vector<std::string> stops;
  TokenizerFlags tokenizer;
  std::string device = "cpu";
};

// The tokenizer the flags name, else the one that came with the model (an HF folder's, a
// checkpoint's), else bytes for a strata checkpoint of vocabulary 256; null where there is none.
// `where` says which, for errors.
std::unique_ptr<text::Tokenizer> open_tokenizer_for(const GenerateFlags& f, int64_t vocab_size, std::string& where) {
  if (f.tokenizer.given()) {
    where = "--tokenizer-model " + f.tokenizer.model;
    return f.tokenizer.open();
  }
  if (const auto dir = model_tokenizer_dir(f.model)) {
    where = dir->string();
    return open_model_tokenizer(*dir);
  }
  if (!f.model.hf.empty()) return nullptr;
  where = "strata train's bytes";
  return vocab_size == 256 ? text::byte_tokenizer() : nullptr;
}

std::unique_ptr<text::Tokenizer> find_tokenizer(const GenerateFlags& f, int64_t vocab_size) {
  std::string where;
  auto tokenizer = open_tokenizer_for(f, vocab_size, where);
  if (tokenizer && tokenizer->vocab_size() > vocab_size)
    fail(where, ": the tokenizer's vocabulary (", tokenizer->vocab_size(), " tokens) is larger than the model's (",
         vocab_size, ")");
  return tokenizer;
}

std::vector<int64_t> eos_ids_in(const nlohmann::json& value, const fs::path& file) {
  if (value.is_number_integer()) return {value.get<int64_t>()};
  std::vector<int64_t> ids;
  if (value.is_array())
    for (const auto& id : value) {
      if (!id.is_number_integer()) fail(file.string(), ": eos_token_id ", value.dump(), " is not an integer or a list of them");
      ids.push_back(id.get<int64_t>());
    }
  else if (!value.is_null())
    fail(file.string(), ": eos_token_id ", value.dump(), " is not an integer or a list of them");
  return ids;
}

// Where generation stops: an HF folder's generation_config.json, else its config.json, names the
// EOS token(s); otherwise the tokenizer's EOS.
std::vector<int64_t> eos_ids(const GenerateFlags& f, const text::Tokenizer* tokenizer) {
  if (!f.model.hf.empty()) {
    const fs::path dir = hf::hf_model_dir(f.model.hf);
    for (const char* name : {"generation_config.json", "config.json"}) {
      const fs::path file = dir / name;
      if (!fs::exists(file)) continue;
      std::ifstream in(file);
      nlohmann::json config;
      try {
        config = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception& e) {
        fail(file.string(), ": not valid JSON (", e.what(), ")");
      }
      if (config.contains("eos_token_id")) {
        auto ids = eos_ids_in(config["eos_token_id"], file);
        if (!ids.empty()) return ids;
      }
    }
  }
  if (tokenizer && tokenizer->eos_id()) return {*tokenizer->eos_id()};
  return {};
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

std::vector<int64_t> prompt_tokens(const GenerateFlags& f, const text::Tokenizer* tokenizer, int64_t vocab_size) {
  if (f.prompt.empty() == f.prompt_tokens.empty()) fail("give exactly one of --prompt (text) and --prompt-tokens (ids)");
  if (f.prompt_tokens.empty() && !tokenizer) {
    if (!f.model.hf.empty())
      fail("--prompt: --hf ", f.model.hf, " has no tokenizer.json or tokenizer.model; give --tokenizer-type and "
           "--tokenizer-model, or --prompt-tokens");
    fail("--prompt: the checkpoint's vocabulary is ", vocab_size, " tokens, not bytes (256); give --tokenizer-type and "
         "--tokenizer-model, or --prompt-tokens");
  }
  const auto tokens = f.prompt_tokens.empty() ? tokenizer->encode(f.prompt) : parse_token_list(f.prompt_tokens);
  for (auto t : tokens)
    if (t < 0 || t >= vocab_size)
      fail(f.prompt.empty() ? "--prompt-tokens" : "--prompt", ": token ", t, " is outside the model's vocabulary [0, ",
           vocab_size, ")");
  return tokens;
}

void print_now(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

std::string joined(const std::vector<int64_t>& ids) {
  std::string out;
  for (auto t : ids) out += cat(out.empty() ? "" : ",", t);
  return out;
}

}  // namespace

Subcommand add_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  auto& s = f->sampling;
  auto* cmd = app.add_subcommand("generate", "continue a prompt (greedy, or temperature / top-k / top-p sampling)");
  add_model_source_flags(*cmd, f->model);
  cmd->add_option("--prompt", f->prompt, "prompt text; the continuation streams out as text. A strata checkpoint of "
                                         "vocabulary 256 without a tokenizer reads it as bytes (strata train's text)");
  cmd->add_option("--prompt-tokens", f->prompt_tokens, "prompt token ids, comma-separated");
  add_tokenizer_flags(*cmd, f->tokenizer);
  cmd->add_option("--stop", f->stops, "end the text before this string (repeatable); EOS tokens end it too")
      ->each([](const std::string& stop) {
        if (stop.empty()) throw CLI::ValidationError("--stop", "an empty stop string would stop at once");
      });
  cmd->add_option("--max-new-tokens", s.max_new_tokens, "tokens to generate")->check(integer_at_least(1));
  cmd->add_option("--temperature", s.temperature, "0: greedy")->check(real_at_least(0.0));
  cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0: off)")->check(integer_at_least(0));
  cmd->add_option("--top-p", s.top_p, "keep the smallest set of tokens with this much probability (1: off)")
      ->check(real_in(0.0, 1.0));
  cmd->add_option("--seed", s.seed, "sampling seed")->check(unsigned_integer());
  cmd->add_option("--device", f->device, "cpu or cuda");
  return {cmd, [f] {
            auto model = load_model(f->model);
            model->to(parse_device(f->device));
            const int64_t vocab = model->config().vocab_size;
            const auto tokenizer = find_tokenizer(*f, vocab);
            const auto prompt = prompt_tokens(*f, tokenizer.get(), vocab);
            auto sampling = f->sampling;
            sampling.stop_tokens = eos_ids(*f, tokenizer.get());
            if (!tokenizer) {
              if (!f->stops.empty()) fail("--stop needs a tokenizer to read the text (give --tokenizer-type and --tokenizer-model)");
              std::printf("tokens: %s\n", joined(infer::generate(*model, prompt, sampling)).c_str());
              return 0;
            }
            // Text mode: the prompt as text, then the continuation as it comes; the ids on stderr.
            print_now(f->prompt.empty() ? tokenizer->decode(prompt) : f->prompt);
            text::TextStream stream(*tokenizer, prompt);
            text::StopStrings stops(f->stops);
            const auto& eos = sampling.stop_tokens;
            sampling.on_token = [&](int64_t id) {
              if (std::find(eos.begin(), eos.end(), id) != eos.end()) return true;  // ends it, unprinted
              print_now(stops.push(stream.push(id)));
              return !stops.stopped();
            };
            const auto generated = infer::generate(*model, prompt, sampling);
            if (!stops.stopped()) {
              print_now(stops.push(stream.finish()));
              print_now(stops.finish());
            }
            print_now("\n");
            std::fprintf(stderr, "tokens: %s\n", joined(generated).c_str());
            return 0;
          }};
}

}  // namespace strata::tools
