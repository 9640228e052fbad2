#include "strata/text/normalizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "strata/core/error.h"
#include "strata/text/byte_level.h"
#include "json_fields.h"
#include "strata/text/regex.h"
#include "strata/text/unicode.h"
#include "strata/text/utf8.h"

namespace strata::text {

namespace {

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(NormalizationForm form) : form_(form) {}
  void apply(std::string& text) const override {
    // ASCII is its own normal form in all four: most text skips the copy.
    if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) return;
    text = normalize(text, form_);
  }

 private:
  NormalizationForm form_;
};

class Lowercase : public Normalizer {
 public:
  void apply(std::string& text) const override { text = lowercase(text); }
};

class StripAccents : public Normalizer {
 public:
  void apply(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t at = 0; at < text.size();) {
      const auto [c, length] = code_point_at(text, at);
      if (!is_combining_mark(c)) out.append(text, at, length);
      at += length;
    }
    text = std::move(out);
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void apply(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_)
      while (begin < end) {
        const auto cp = code_point_at(text, begin);
        if (!is_white_space(cp.value)) break;
        begin += cp.length;
      }
    if (right_)
      while (end > begin) {
        size_t last = end - 1;
        while ((static_cast<unsigned char>(text[last]) & 0xC0) == 0x80) --last;  // back to the lead byte
        if (!is_white_space(code_point_at(text, last).value)) break;
        end = last;
      }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class Replace : public Normalizer {
 public:
  Replace(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void apply(std::string& text) const override {
    std::string out;
    size_t previous = 0;
    for (const auto& m : pattern_.find_all(text)) {
      out.append(text, previous, m.begin - previous);
      out += content_;
      previous = m.end;
    }
    out.append(text, previous);
    text = std::move(out);
  }

 private:
  Regex pattern_;
  std::string content_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void apply(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ByteLevelNormalizer : public Normalizer {
 public:
  void apply(std::string& text) const override { text = bytes_to_byte_level(text); }
};

class Identity : public Normalizer {
 public:
  void apply(std::string&) const override {}
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::string& text) const override {
    for (const auto& step : steps_) step->apply(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> parse_normalizer(const nlohmann::json& spec, const std::string& where) {
  const std::string type = type_of(spec, where);
  const std::string here = cat(where, " (", type, ")");
  if (type == "NFC") return std::make_unique<UnicodeForm>(NormalizationForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeForm>(NormalizationForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(NormalizationForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(NormalizationForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip") {
    const bool left = bool_field(spec, "strip_left", here);
    return std::make_unique<Strip>(left, bool_field(spec, "strip_right", here));
  }
  if (type == "Replace") {
    Regex pattern = pattern_field(spec, here);
    return std::make_unique<Replace>(std::move(pattern), string_field(spec, "content", here));
  }
  if (type == "Prepend") return std::make_unique<Prepend>(string_field(spec, "prepend", here));
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Precompiled") {
    // SentencePiece's own normalisation rules, compiled; converters write an empty map for the
    // identity rule. A real map would need SentencePiece's normaliser, which strata does not run here.
    const auto map = spec.find("precompiled_charsmap");
    if (map == spec.end() || map->is_null() || (map->is_string() && map->get<std::string>().empty()))
      return std::make_unique<Identity>();
    fail(here, ": a non-empty precompiled_charsmap (SentencePiece normalisation rules) is not supported; "
         "use --tokenizer-type SentencePieceTokenizer with the tokenizer.model instead");
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    const auto& list = array_field(spec, "normalizers", here);
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(parse_normalizer(list[i], cat(where, ".normalizers[", i, "]")));
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail(where, ": normalizer type '", type, "' is not supported (strata implements NFC, NFD, NFKC, NFKD, Lowercase, "
       "Strip, StripAccents, Replace, Prepend, ByteLevel, Sequence and an empty Precompiled)");
}

}  // namespace strata::text
