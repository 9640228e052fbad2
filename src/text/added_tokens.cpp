#include "strata/text/added_tokens.h"

#include <utf8proc.h>

#include <array>

#include "strata/text/unicode.h"
#include "strata/text/utf8.h"

namespace strata::text {

// A byte trie of the patterns: at each position of a text it gives the longest pattern that
// starts there. Few bytes can start a pattern ('<' for most), so most positions cost one lookup.
struct AddedTokenMatcher::Trie {
  struct Node {
    std::array<int32_t, 256> child;
    int32_t token = -1;  // index into tokens_ of the pattern ending here
    Node() { child.fill(-1); }
  };
  std::vector<Node> nodes{1};

  void insert(std::string_view pattern, int32_t token) {
    int32_t at = 0;
    for (unsigned char b : pattern) {
      if (nodes[at].child[b] < 0) {
        nodes[at].child[b] = static_cast<int32_t>(nodes.size());
        nodes.emplace_back();
      }
      at = nodes[at].child[b];
    }
    // Two tokens with one pattern: the later one wins, as in HF's map.
    nodes[at].token = token;
  }
  // Whether any pattern starts somewhere in `text` (most texts hold no added token at all).
  bool any_in(std::string_view text) const {
    for (size_t i = 0; i < text.size(); ++i)
      if (nodes[0].child[static_cast<unsigned char>(text[i])] >= 0 && longest_at(text, i).first >= 0) return true;
    return false;
  }
  // (token index, length) of the longest pattern at text[from], or token -1.
  std::pair<int32_t, size_t> longest_at(std::string_view text, size_t from) const {
    std::pair<int32_t, size_t> best{-1, 0};
    int32_t at = 0;
    for (size_t i = from; i < text.size(); ++i) {
      at = nodes[at].child[static_cast<unsigned char>(text[i])];
      if (at < 0) break;
      if (nodes[at].token >= 0) best = {nodes[at].token, i + 1 - from};
    }
    return best;
  }
};

namespace {

// Rust regex's \w (Alphabetic, marks, decimal digits, connector punctuation, joiners): what HF's
// single_word rule looks at on either side of a token.
bool is_word_character(char32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// The code point that ends at text[end] (exclusive).
CodePoint code_point_before(std::string_view text, size_t end) {
  size_t begin = end - 1;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  return code_point_at(text, begin);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), trie_(std::make_unique<Trie>()) {
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (!patterns[i].empty()) trie_->insert(patterns[i], static_cast<int32_t>(i));
}

AddedTokenMatcher::~AddedTokenMatcher() = default;
AddedTokenMatcher::AddedTokenMatcher(AddedTokenMatcher&&) noexcept = default;

void AddedTokenMatcher::split(std::vector<Piece>& pieces) const {
  if (empty()) return;
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (auto& piece : pieces) {
    if (piece.token) {
      out.push_back(std::move(piece));
      continue;
    }
    const std::string_view text = piece.text;
    const auto add_text = [&](size_t begin, size_t end) {
      if (end <= begin) return;
      Piece part;
      part.text = std::string(text.substr(begin, end - begin));
      part.at_start = piece.at_start && begin == 0;
      out.push_back(std::move(part));
    };
    if (!trie_->any_in(text)) {
      out.push_back(std::move(piece));
      continue;
    }
    size_t covered = 0;  // HF's start_offset: the end of the last token taken
    size_t search = 0;   // where the next match may start (the end of the last match)
    while (search < text.size()) {
      const auto [index, length] = trie_->longest_at(text, search);
      if (index < 0) {
        ++search;
        continue;
      }
      const AddedToken& token = tokens_[index];
      size_t start = search, stop = search + length;
      search = stop;
      if (token.single_word) {
        const bool space_before = start == 0 || !is_word_character(code_point_before(text, start).value);
        const bool space_after = stop == text.size() || !is_word_character(code_point_at(text, stop).value);
        if (!space_before || !space_after) continue;
      }
      if (token.lstrip) {
        size_t new_start = start;
        while (new_start > 0) {
          const auto before = code_point_before(text, new_start);
          if (!is_white_space(before.value)) break;
          new_start -= before.length;
        }
        start = std::max(new_start, covered);
      }
      if (token.rstrip)
        while (stop < text.size()) {
          const auto after = code_point_at(text, stop);
          if (!is_white_space(after.value)) break;
          stop += after.length;
        }
      add_text(covered, start);
      Piece found;
      found.text = std::string(text.substr(start, stop - start));
      found.token = token.id;
      out.push_back(std::move(found));
      covered = stop;
    }
    add_text(covered, text.size());
  }
  pieces = std::move(out);
}

}  // namespace strata::text
