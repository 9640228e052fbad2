#pragma once
// The regular expressions of tokenizer.json files (written for Oniguruma, which HF tokenizers
// uses), run by PCRE2 with Unicode properties and its JIT compiler.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace strata::text {

struct Match {
  size_t begin, end;  // byte offsets
};

class Regex {
 public:
  // `pattern` as Oniguruma reads it; `where` names its place in the file for errors. A pattern
  // PCRE2 cannot compile is refused with PCRE2's message.
  Regex(std::string_view pattern, std::string_view where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Every non-overlapping match in `text` (valid UTF-8), left to right. After an empty match the
  // search goes on one character further, as Oniguruma's iterator does.
  std::vector<Match> find_all(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::unique_ptr<Compiled> compiled_;
};

// A literal string as a pattern that matches exactly it.
std::string escape_regex(std::string_view literal);

// `pattern` with Oniguruma's meaning of \s and \S spelt out for PCRE2: Oniguruma's \s is the
// White_Space property, PCRE2's (in UCP mode) leaves out U+0085 NEXT LINE.
std::string oniguruma_to_pcre2(std::string_view pattern);

}  // namespace strata::text
