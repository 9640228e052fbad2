#include "strata/text/hf_tokenizer.h"

#include <fstream>

#include "json_fields.h"
#include "strata/core/error.h"
#include "strata/text/utf8.h"

namespace strata::text {

namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot be read");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

std::vector<std::pair<std::string, std::string>> parse_merges(const nlohmann::json& list, const std::string& where) {
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& m = list[i];
    // Older files write "left right"; newer ones ["left", "right"] (which allows spaces in tokens).
    if (m.is_string()) {
      const std::string text = m.get<std::string>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
        fail(where, ": merge ", i, " '", text, "' is not two tokens separated by one space");
      merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(where, ": merge ", i, " is ", m.dump(), ", expected \"left right\" or [\"left\", \"right\"]");
    }
  }
  return merges;
}

std::unique_ptr<BpeModel> parse_model(const nlohmann::json& spec, const std::string& where) {
  const std::string type = spec.contains("type") ? type_of(spec, where) : "BPE";
  if (type != "BPE")
    fail(where, ": model type '", type, "' is not supported (strata implements BPE; WordPiece, Unigram and "
         "WordLevel tokenizers are not read)");
  const std::string here = where + " (BPE)";
  if (spec.contains("dropout") && !spec["dropout"].is_null() && spec["dropout"].get<double>() != 0.0)
    fail(here, ": dropout ", spec["dropout"].dump(), " is not supported (it makes encoding random; strata encodes as "
         "HF does with dropout off)");
  Vocabulary vocab;
  const auto& v = field(spec, "vocab", here);
  if (!v.is_object()) fail(here, ": \"vocab\" is not an object of token -> id");
  vocab.reserve(v.size());
  for (const auto& [token, id] : v.items()) {
    if (!id.is_number_integer()) fail(here, ": vocabulary entry '", token, "' has id ", id.dump(), ", expected an integer");
    vocab.emplace(token, id.get<int32_t>());
  }
  BpeOptions options;
  const auto optional_string = [&](const char* name) -> std::optional<std::string> {
    if (!spec.contains(name) || spec[name].is_null()) return std::nullopt;
    return string_field(spec, name, here);
  };
  options.unk_token = optional_string("unk_token");
  options.continuing_subword_prefix = optional_string("continuing_subword_prefix").value_or("");
  options.end_of_word_suffix = optional_string("end_of_word_suffix").value_or("");
  options.fuse_unk = bool_field_or(spec, "fuse_unk", false, here);
  options.byte_fallback = bool_field_or(spec, "byte_fallback", false, here);
  options.ignore_merges = bool_field_or(spec, "ignore_merges", false, here);
  return std::make_unique<BpeModel>(std::move(vocab), parse_merges(array_field(spec, "merges", here), here),
                                    std::move(options), here);
}

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& list, const std::string& where) {
  std::vector<AddedToken> tokens;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string here = cat(where, "[", i, "]");
    const auto& t = list[i];
    AddedToken token;
    token.content = string_field(t, "content", here);
    check_utf8(token.content, here + " content");
    const int64_t id = int_field(t, "id", here);
    if (id < 0 || id > INT32_MAX) fail(here, ": id ", id, " is outside [0, 2^31)");
    token.id = static_cast<int32_t>(id);
    token.single_word = bool_field_or(t, "single_word", false, here);
    token.lstrip = bool_field_or(t, "lstrip", false, here);
    token.rstrip = bool_field_or(t, "rstrip", false, here);
    token.special = bool_field_or(t, "special", false, here);
    token.normalized = bool_field_or(t, "normalized", !token.special, here);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

}  // namespace

HfTokenizer::HfTokenizer(const nlohmann::json& tokenizer, const nlohmann::json& config, const std::string& where) {
  if (!tokenizer.is_object()) fail(where, ": expected a tokenizer.json object");
  model_ = parse_model(field(tokenizer, "model", where), where + " model");
  const auto component = [&](const char* name) -> const nlohmann::json* {
    const auto it = tokenizer.find(name);
    return it == tokenizer.end() || it->is_null() ? nullptr : &*it;
  };
  if (const auto* n = component("normalizer")) normalizer_ = parse_normalizer(*n, where + " normalizer");
  if (const auto* p = component("pre_tokenizer")) pre_tokenizer_ = parse_pre_tokenizer(*p, where + " pre_tokenizer");
  decoder_ = component("decoder") ? parse_decoder(*component("decoder"), where + " decoder") : no_decoder();
  frame_ = parse_post_processor(component("post_processor") ? *component("post_processor") : nlohmann::json(),
                                where + " post_processor");
  // "truncation" and "padding" are left alone: transformers (and so Megatron) switches both off
  // for a text encoded without asking for them, as strata encodes.

  if (const auto* list = component("added_tokens")) {
    if (!list->is_array()) fail(where, ": \"added_tokens\" is not an array");
    added_ = parse_added_tokens(*list, where + " added_tokens");
  }
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  vocab_size_ = model_->id_end();
  for (const auto& token : added_) {
    std::string pattern = token.content;
    if (token.normalized && normalizer_) normalizer_->apply(pattern);
    added_text_[token.id] = pattern;
    (token.normalized ? normalized : raw).push_back(token);
    (token.normalized ? normalized_patterns : raw_patterns).push_back(pattern);
    vocab_size_ = std::max<int64_t>(vocab_size_, token.id + 1);
  }
  raw_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(raw), std::move(raw_patterns));
  normalized_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(normalized), std::move(normalized_patterns));
  eos_id_ = config_token_id(config, "eos_token", where);
  bos_id_ = config_token_id(config, "bos_token", where);
}

std::unique_ptr<HfTokenizer> HfTokenizer::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const fs::path file = fs::is_directory(path) ? path / "tokenizer.json" : path;
  if (!fs::exists(file))
    fail("--tokenizer-model ", path.string(), ": ", fs::is_directory(path) ? "the folder has no tokenizer.json" : "no such file",
         " (HuggingFaceTokenizer reads an HF tokenizer.json)");
  const fs::path config_file = file.parent_path() / "tokenizer_config.json";
  const nlohmann::json config = fs::exists(config_file) ? read_json(config_file) : nlohmann::json();
  return std::make_unique<HfTokenizer>(read_json(file), config, file.string());
}

std::optional<int64_t> HfTokenizer::config_token_id(const nlohmann::json& config, const char* name,
                                                    const std::string& where) const {
  if (!config.is_object() || !config.contains(name) || config[name].is_null()) return std::nullopt;
  const auto& value = config[name];
  // tokenizer_config.json writes a token as its text, or as an AddedToken object.
  const auto* text = value.is_string() ? &value : value.is_object() && value.contains("content") ? &value["content"] : nullptr;
  if (!text || !text->is_string())
    fail(where, ": tokenizer_config.json's ", name, " is ", value.dump(), ", expected a token's text");
  const auto id = token_to_id(text->get<std::string>());
  if (!id) fail(where, ": tokenizer_config.json's ", name, " '", text->get<std::string>(), "' is not a token of the tokenizer");
  return id;
}

std::vector<Piece> HfTokenizer::pre_tokenize(std::string_view text) const {
  check_utf8(text, "the text to encode");
  std::vector<Piece> pieces;
  if (text.empty()) return pieces;
  pieces.push_back({std::string(text), std::nullopt, true, false});
  raw_matcher_->split(pieces);
  if (normalizer_)
    for (auto& p : pieces)
      if (!p.token) normalizer_->apply(p.text);
  normalized_matcher_->split(pieces);
  std::erase_if(pieces, [](const Piece& p) { return !p.token && p.text.empty(); });
  if (pre_tokenizer_) pre_tokenizer_->split(pieces);
  return pieces;
}

std::vector<int64_t> HfTokenizer::encode(std::string_view text, AddSpecialTokens add) const {
  std::vector<int64_t> ids;
  if (add == AddSpecialTokens::yes) ids = frame_.before;
  for (const auto& piece : pre_tokenize(text)) {
    if (piece.token) ids.push_back(*piece.token);
    else model_->tokenize(piece, ids);
  }
  if (add == AddSpecialTokens::yes) ids.insert(ids.end(), frame_.after.begin(), frame_.after.end());
  return ids;
}

std::string HfTokenizer::decode(std::span<const int64_t> ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    if (const auto added = added_text_.find(id); added != added_text_.end()) {
      tokens.push_back(added->second);
    } else if (const std::string* token = model_->id_to_token(id)) {
      tokens.push_back(*token);
    } else {
      fail("token id ", id, " is not in the tokenizer's vocabulary (ids run from 0 to ", vocab_size_ - 1, ")");
    }
  }
  return decoder_->decode(std::move(tokens));
}

std::optional<int64_t> HfTokenizer::token_to_id(std::string_view token) const {
  for (const auto& t : added_)
    if (t.content == token) return t.id;
  if (const auto id = model_->token_to_id(token)) return *id;
  return std::nullopt;
}

std::vector<int64_t> HfTokenizer::special_ids() const {
  std::vector<int64_t> ids;
  for (const auto& t : added_)
    if (t.special) ids.push_back(t.id);
  return ids;
}

}  // namespace strata::text
