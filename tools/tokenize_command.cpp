// strata tokenize: texts -> token ids (or back, with --decode) with a tokenizer, to see what
// preprocess and generate will feed a model. Input and output are JSON, one element per text.
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "strata/core/error.h"
#include "tokenizer_flags.h"

namespace strata::tools {

namespace {

struct TokenizeFlags {
  TokenizerFlags tokenizer;
  std::string input;
  bool decode = false;
  bool no_add_special_tokens = false;
};

nlohmann::json read_input(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--input-json ", path, ": cannot be read");
  nlohmann::json input;
  try {
    input = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("--input-json ", path, ": not valid JSON (", e.what(), ")");
  }
  if (!input.is_array()) fail("--input-json ", path, ": expected a JSON array, found ", input.type_name());
  return input;
}

// One element per line, so that a long batch stays readable and diffable.
void print_array(const std::vector<std::string>& elements) {
  std::printf("[");
  for (size_t i = 0; i < elements.size(); ++i) std::printf("%s\n %s", i ? "," : "", elements[i].c_str());
  std::printf("%s]\n", elements.empty() ? "" : "\n");
}

std::vector<std::string> encode_all(const text::Tokenizer& tokenizer, const nlohmann::json& input, const TokenizeFlags& f) {
  std::vector<std::string> out;
  for (size_t i = 0; i < input.size(); ++i) {
    if (!input[i].is_string())
      fail("--input-json ", f.input, ": element ", i, " is ", input[i].dump(), ", expected a string (or give --decode for id arrays)");
    const auto add = f.no_add_special_tokens ? text::AddSpecialTokens::no : text::AddSpecialTokens::yes;
    try {
      out.push_back(nlohmann::json(tokenizer.encode(input[i].get<std::string>(), add)).dump());
    } catch (const Error& e) {
      fail("--input-json ", f.input, ": element ", i, ": ", e.what());
    }
  }
  return out;
}

std::vector<std::string> decode_all(const text::Tokenizer& tokenizer, const nlohmann::json& input, const TokenizeFlags& f) {
  std::vector<std::string> out;
  for (size_t i = 0; i < input.size(); ++i) {
    std::vector<int64_t> ids;
    const bool ok = input[i].is_array() && std::all_of(input[i].begin(), input[i].end(),
                                                        [](const auto& id) { return id.is_number_integer(); });
    if (!ok) fail("--input-json ", f.input, ": element ", i, " is ", input[i].dump(), ", expected an array of token ids");
    for (const auto& id : input[i]) ids.push_back(id.template get<int64_t>());
    try {
      out.push_back(nlohmann::json(tokenizer.decode(ids)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } catch (const Error& e) {
      fail("--input-json ", f.input, ": element ", i, ": ", e.what());
    }
  }
  return out;
}

}  // namespace

Subcommand add_tokenize(CLI::App& app) {
  auto f = std::make_shared<TokenizeFlags>();
  auto* cmd = app.add_subcommand("tokenize", "texts -> token ids, or ids -> texts with --decode (JSON in, JSON out)");
  add_tokenizer_flags(*cmd, f->tokenizer);
  cmd->add_option("--input-json", f->input, "a JSON array of strings (with --decode: of token id arrays)")->required();
  cmd->add_flag("--decode", f->decode, "decode id arrays to strings");
  cmd->add_flag("--no-add-special-tokens", f->no_add_special_tokens,
                "leave out the tokens the tokenizer's post-processor adds around each text (a Llama BOS); "
                "special tokens written in the text are still recognised");
  return {cmd, [f] {
            if (!f->tokenizer.given()) fail("give --tokenizer-type and --tokenizer-model");
            const auto tokenizer = f->tokenizer.open();
            const auto input = read_input(f->input);
            print_array(f->decode ? decode_all(*tokenizer, input, *f) : encode_all(*tokenizer, input, *f));
            return 0;
          }};
}

}  // namespace strata::tools
