#include "strata/text/decoder.h"

#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "strata/core/error.h"
#include "strata/text/byte_level.h"
#include "strata/text/regex.h"
#include "strata/text/utf8.h"

namespace strata::text {

std::string Decoder::decode(std::vector<std::string> tokens) const {
  std::string text;
  for (const auto& t : decode_chain(std::move(tokens))) text += t;
  return text;
}

namespace {

// All the tokens' byte-level characters back to bytes, then the bytes as (lossy) UTF-8. A token
// with a character outside the alphabet (an added token such as "<｜end▁of▁sentence｜>")
// contributes its own UTF-8 bytes unchanged.
class ByteLevel : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      const size_t mark = bytes.size();
      bool all_in_alphabet = true;
      for (size_t at = 0; at < token.size() && all_in_alphabet;) {
        const auto [c, length] = code_point_at(token, at);
        const auto byte = char_to_byte(c);
        if (byte) bytes += static_cast<char>(*byte);
        all_in_alphabet = byte.has_value();
        at += length;
      }
      if (!all_in_alphabet) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    return {utf8_lossy(bytes)};
  }
};

class Metaspace : public Decoder {
 public:
  Metaspace(std::string replacement, bool strip_first) : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t at = 0; at < t.size();) {
        if (t.compare(at, replacement_.size(), replacement_) == 0) {
          // The first token's leading meta-space is the one the pre-tokenizer prepended.
          if (!(i == 0 && strip_first_)) out += ' ';
          at += replacement_.size();
        } else {
          out += t[at++];
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

// "<0x41>"-style tokens back to bytes: runs of them that form valid UTF-8 become that text,
// others one U+FFFD per byte (HF's rule, which differs from utf8_lossy's).
class ByteFallback : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string run;
    const auto flush = [&] {
      if (run.empty()) return;
      if (valid_utf8_prefix(run) == run.size()) {
        out.push_back(run);
      } else {
        for (size_t i = 0; i < run.size(); ++i) out.emplace_back(kReplacementCharacter);
      }
      run.clear();
    };
    for (auto& token : tokens) {
      if (const auto byte = byte_token(token)) {
        run += static_cast<char>(*byte);
        continue;
      }
      flush();
      out.push_back(std::move(token));
    }
    flush();
    return out;
  }

 private:
  static std::optional<unsigned char> byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return std::nullopt;
    const auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int high = hex(t[3]), low = hex(t[4]);
    if (high < 0 || low < 0) return std::nullopt;
    return static_cast<unsigned char>(high * 16 + low);
  }
};

class Fuse : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string joined;
    for (const auto& t : tokens) joined += t;
    return {joined};
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class Strip : public Decoder {
 public:
  Strip(char32_t content, int64_t start, int64_t stop) : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<size_t, CodePoint>> chars;
      for (size_t at = 0; at < t.size();) {
        const auto cp = code_point_at(t, at);
        chars.push_back({at, cp});
        at += cp.length;
      }
      size_t first = 0, last = chars.size();
      for (int64_t i = 0; i < start_ && first < chars.size() && chars[first].second.value == content_; ++i) ++first;
      for (int64_t i = 0; i < stop_ && last > first && chars[last - 1].second.value == content_; ++i) --last;
      const size_t begin = first < chars.size() ? chars[first].first : t.size();
      const size_t end = last < chars.size() ? chars[last].first : t.size();
      t = t.substr(begin, end - begin);
    }
    return tokens;
  }

 private:
  char32_t content_;
  int64_t start_, stop_;
};

class Replace : public Decoder {
 public:
  Replace(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::string out;
      size_t previous = 0;
      for (const auto& m : pattern_.find_all(t)) {
        out.append(t, previous, m.begin - previous);
        out += content_;
        previous = m.end;
      }
      out.append(t, previous);
      t = std::move(out);
    }
    return tokens;
  }

 private:
  Regex pattern_;
  std::string content_;
};

// The classic BPE decoder: an end-of-word suffix becomes a space, except on the last token.
class BpeSuffix : public Decoder {
 public:
  explicit BpeSuffix(std::string suffix) : suffix_(std::move(suffix)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string replacement = i + 1 == tokens.size() ? "" : " ";
      std::string out;
      const std::string& t = tokens[i];
      for (size_t at = 0; at < t.size();) {
        if (!suffix_.empty() && t.compare(at, suffix_.size(), suffix_) == 0) {
          out += replacement;
          at += suffix_.size();
        } else {
          out += t[at++];
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  std::string suffix_;
};

class JoinWithSpaces : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return {joined};
  }
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& step : steps_) tokens = step->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

char32_t one_character(const std::string& text, const std::string& where, const char* field) {
  check_utf8(text, where);
  if (text.empty() || code_point_at(text, 0).length != static_cast<int>(text.size()))
    fail(where, ": ", field, " '", text, "' is not one character");
  return code_point_at(text, 0).value;
}

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const nlohmann::json& spec, const std::string& where) {
  const std::string type = type_of(spec, where);
  const std::string here = cat(where, " (", type, ")");
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "Metaspace") {
    const std::string replacement = string_field(spec, "replacement", here);
    one_character(replacement, here, "replacement");
    // The first token keeps its meta-space only where the pre-tokenizer never prepends one.
    bool strip_first = true;
    if (spec.contains("prepend_scheme")) strip_first = string_field(spec, "prepend_scheme", here) != "never";
    if (!bool_field_or(spec, "add_prefix_space", true, here)) strip_first = false;
    return std::make_unique<Metaspace>(replacement, strip_first);
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Strip") {
    const char32_t content = one_character(string_field(spec, "content", here), here, "content");
    const int64_t start = int_field(spec, "start", here);
    const int64_t stop = int_field(spec, "stop", here);
    if (start < 0 || stop < 0) fail(here, ": start ", start, " and stop ", stop, " must not be negative");
    return std::make_unique<Strip>(content, start, stop);
  }
  if (type == "Replace") {
    Regex pattern = pattern_field(spec, here);
    return std::make_unique<Replace>(std::move(pattern), string_field(spec, "content", here));
  }
  if (type == "BPEDecoder") return std::make_unique<BpeSuffix>(spec.contains("suffix") ? string_field(spec, "suffix", here) : "</w>");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    const auto& list = array_field(spec, "decoders", here);
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(parse_decoder(list[i], cat(where, ".decoders[", i, "]")));
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail(where, ": decoder type '", type, "' is not supported (strata implements ByteLevel, Metaspace, ByteFallback, "
       "Fuse, Strip, Replace, BPEDecoder and Sequence)");
}

std::unique_ptr<Decoder> no_decoder() { return std::make_unique<JoinWithSpaces>(); }

}  // namespace strata::text
