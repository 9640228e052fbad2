#include "strata/text/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include <functional>

#include "json_fields.h"
#include "strata/core/error.h"
#include "strata/text/regex.h"
#include "strata/text/unicode.h"
#include "strata/text/utf8.h"

namespace strata::text {

std::vector<std::pair<size_t, size_t>> apply_split_behavior(const std::vector<Span>& spans, SplitBehavior behavior) {
  // (range, keep) per output part, folded as HF's NormalizedString::split does.
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> parts;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const auto& s : spans) parts.push_back({{s.begin, s.end}, true});
      break;
    case SplitBehavior::Removed:
      for (const auto& s : spans) parts.push_back({{s.begin, s.end}, !s.matched});
      break;
    case SplitBehavior::Contiguous:
      for (const auto& s : spans) {
        if (s.matched == previous_match && !parts.empty()) parts.back().first.second = s.end;
        else parts.push_back({{s.begin, s.end}, true});
        previous_match = s.matched;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& s : spans) {
        if (s.matched && !previous_match && !parts.empty()) parts.back().first.second = s.end;
        else parts.push_back({{s.begin, s.end}, true});
        previous_match = s.matched;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto s = spans.rbegin(); s != spans.rend(); ++s) {
        if (s->matched && !previous_match && !parts.empty()) parts.back().first.first = s->begin;
        else parts.push_back({{s->begin, s->end}, true});
        previous_match = s->matched;
      }
      std::reverse(parts.begin(), parts.end());
      break;
  }
  std::vector<std::pair<size_t, size_t>> kept;
  for (const auto& [range, keep] : parts)
    if (keep && range.second > range.first) kept.push_back(range);
  return kept;
}

namespace {

// Spans of `text` from a regex's matches (HF's Pattern for a regex).
std::vector<Span> regex_spans(const Regex& regex, std::string_view text, bool invert) {
  std::vector<Span> spans;
  size_t previous = 0;
  for (const auto& m : regex.find_all(text)) {
    if (previous != m.begin) spans.push_back({previous, m.begin, invert});
    spans.push_back({m.begin, m.end, !invert});
    previous = m.end;
  }
  if (previous != text.size()) spans.push_back({previous, text.size(), invert});
  return spans;
}

// Spans of `text` from a per-character predicate: each matching character is a span of its own.
std::vector<Span> char_spans(const std::function<bool(char32_t)>& is_match, std::string_view text) {
  std::vector<Span> spans;
  size_t previous = 0;
  for (size_t at = 0; at < text.size();) {
    const auto [c, length] = code_point_at(text, at);
    if (is_match(c)) {
      if (previous < at) spans.push_back({previous, at, false});
      spans.push_back({at, at + length, true});
      previous = at + length;
    }
    at += length;
  }
  if (previous < text.size()) spans.push_back({previous, text.size(), false});
  return spans;
}

// Replaces each text piece by the parts `split_one` cuts it into.
void split_each(std::vector<Piece>& pieces,
                const std::function<std::vector<std::pair<size_t, size_t>>(Piece&)>& split_one) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (auto& piece : pieces) {
    if (piece.token) {
      out.push_back(std::move(piece));
      continue;
    }
    for (const auto& [begin, end] : split_one(piece)) {
      Piece part;
      part.text = piece.text.substr(begin, end - begin);
      part.at_start = piece.at_start && begin == 0;
      part.byte_level = piece.byte_level;
      out.push_back(std::move(part));
    }
  }
  pieces = std::move(out);
}

SplitBehavior parse_behavior(const nlohmann::json& spec, const std::string& where, SplitBehavior fallback) {
  if (!spec.contains("behavior")) return fallback;
  const std::string name = string_field(spec, "behavior", where);
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail(where, ": behavior '", name, "' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

class RegexSplit : public PreTokenizer {
 public:
  RegexSplit(Regex regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void split(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](Piece& p) {
      materialize_byte_level(p);
      return apply_split_behavior(regex_spans(regex_, p.text, invert_), behavior_);
    });
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class CharSplit : public PreTokenizer {
 public:
  CharSplit(std::function<bool(char32_t)> is_match, SplitBehavior behavior)
      : is_match_(std::move(is_match)), behavior_(behavior) {}
  void split(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](Piece& p) {
      materialize_byte_level(p);
      return apply_split_behavior(char_spans(is_match_, p.text), behavior_);
    });
  }

 private:
  std::function<bool(char32_t)> is_match_;
  SplitBehavior behavior_;
};

// GPT-2's pre-tokenisation regex, which ByteLevel applies when use_regex is set.
constexpr std::string_view kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), regex_(use_regex ? std::optional<Regex>(Regex(kGpt2Pattern, "ByteLevel")) : std::nullopt) {}
  void split(std::vector<Piece>& pieces) const override {
    split_each(pieces, [&](Piece& p) -> std::vector<std::pair<size_t, size_t>> {
      materialize_byte_level(p);
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
      if (!regex_) return {{0, p.text.size()}};
      return apply_split_behavior(regex_spans(*regex_, p.text, false), SplitBehavior::Isolated);
    });
    for (auto& p : pieces)
      if (!p.token) p.byte_level = true;
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

enum class PrependScheme { always, first, never };

class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void split(std::vector<Piece>& pieces) const override {
    const char32_t replacement = code_point_at(replacement_, 0).value;
    split_each(pieces, [&](Piece& p) -> std::vector<std::pair<size_t, size_t>> {
      materialize_byte_level(p);
      std::string replaced;
      replaced.reserve(p.text.size() + replacement_.size());
      for (char c : p.text) {
        if (c == ' ') replaced += replacement_;
        else replaced += c;
      }
      const bool starts_with_replacement = replaced.compare(0, replacement_.size(), replacement_) == 0;
      const bool prepend = scheme_ == PrependScheme::always || (scheme_ == PrependScheme::first && p.at_start);
      if (prepend && !starts_with_replacement) replaced.insert(0, replacement_);
      p.text = std::move(replaced);
      if (!split_) return {{0, p.text.size()}};
      return apply_split_behavior(char_spans([&](char32_t c) { return c == replacement; }, p.text),
                                  SplitBehavior::MergedWithNext);
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void split(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

std::unique_ptr<PreTokenizer> parse_metaspace(const nlohmann::json& spec, const std::string& here) {
  const std::string replacement = string_field(spec, "replacement", here);
  check_utf8(replacement, here + " replacement");
  if (replacement.empty() || code_point_at(replacement, 0).length != static_cast<int>(replacement.size()))
    fail(here, ": replacement '", replacement, "' is not one character");
  PrependScheme scheme = PrependScheme::always;
  if (spec.contains("prepend_scheme")) {
    const std::string name = string_field(spec, "prepend_scheme", here);
    if (name == "always") scheme = PrependScheme::always;
    else if (name == "first") scheme = PrependScheme::first;
    else if (name == "never") scheme = PrependScheme::never;
    else fail(here, ": prepend_scheme '", name, "' is not one of always, first, never");
  }
  // Files from before prepend_scheme say add_prefix_space instead; false means never.
  if (!bool_field_or(spec, "add_prefix_space", true, here)) scheme = PrependScheme::never;
  return std::make_unique<Metaspace>(replacement, scheme, bool_field_or(spec, "split", true, here));
}

}  // namespace

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& spec, const std::string& where) {
  const std::string type = type_of(spec, where);
  const std::string here = cat(where, " (", type, ")");
  if (type == "ByteLevel") {
    const bool add_prefix_space = bool_field_or(spec, "add_prefix_space", true, here);
    return std::make_unique<ByteLevel>(add_prefix_space, bool_field_or(spec, "use_regex", true, here));
  }
  if (type == "Split") {
    Regex pattern = pattern_field(spec, here);
    const SplitBehavior behavior = parse_behavior(spec, here, SplitBehavior::Isolated);
    return std::make_unique<RegexSplit>(std::move(pattern), behavior, bool_field_or(spec, "invert", false, here));
  }
  if (type == "Metaspace") return parse_metaspace(spec, here);
  if (type == "Digits")
    return std::make_unique<CharSplit>(is_numeric, bool_field_or(spec, "individual_digits", false, here)
                                                       ? SplitBehavior::Isolated
                                                       : SplitBehavior::Contiguous);
  if (type == "Punctuation")
    return std::make_unique<CharSplit>(is_punctuation, parse_behavior(spec, here, SplitBehavior::Isolated));
  if (type == "WhitespaceSplit") return std::make_unique<CharSplit>(is_white_space, SplitBehavior::Removed);
  if (type == "CharDelimiterSplit") {
    const std::string delimiter = string_field(spec, "delimiter", here);
    check_utf8(delimiter, here + " delimiter");
    if (delimiter.empty() || code_point_at(delimiter, 0).length != static_cast<int>(delimiter.size()))
      fail(here, ": delimiter '", delimiter, "' is not one character");
    const char32_t d = code_point_at(delimiter, 0).value;
    return std::make_unique<CharSplit>([d](char32_t c) { return c == d; }, SplitBehavior::Removed);
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    const auto& list = array_field(spec, "pretokenizers", here);
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back(parse_pre_tokenizer(list[i], cat(where, ".pretokenizers[", i, "]")));
    return std::make_unique<Sequence>(std::move(steps));
  }
  fail(where, ": pre_tokenizer type '", type, "' is not supported (strata implements ByteLevel, Split, Metaspace, "
       "Digits, Punctuation, WhitespaceSplit, CharDelimiterSplit and Sequence)");
}

}  // namespace strata::text
