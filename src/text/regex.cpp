#define PCRE2_CODE_UNIT_WIDTH 8
#include "strata/text/regex.h"

#include <pcre2.h>

#include "strata/core/error.h"
#include "strata/text/utf8.h"

namespace strata::text {

namespace {

// Oniguruma's \s (White_Space) and \w (Letter | Mark | Decimal_Number | Connector_Punctuation),
// as the inside of a PCRE2 character class.
constexpr std::string_view kOnigSpace = R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
constexpr std::string_view kOnigWord = R"(\p{L}\p{M}\p{Nd}\p{Pc})";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// The JIT's stack, one per thread (PCRE2 asks for it at each match, from the matching thread):
// the default 32 KiB runs out on long runs of whitespace with patterns such as `\s+(?!\S)`.
pcre2_jit_stack* thread_jit_stack(void*) {
  struct Owner {
    pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    ~Owner() { pcre2_jit_stack_free(stack); }
  };
  thread_local Owner owner;
  return owner.stack;
}

}  // namespace

std::string oniguruma_to_pcre2(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      const std::string_view set = (e == 's' || e == 'S') ? kOnigSpace : (e == 'w' || e == 'W') ? kOnigWord : "";
      if (!set.empty()) {
        const bool negated = e == 'S' || e == 'W';
        if (in_class && negated)
          fail("regex '", pattern, "': \\", e, " inside a character class is not supported (Oniguruma's meaning "
               "of it has no PCRE2 spelling)");
        if (in_class) out += set;
        else out += cat(negated ? "[^" : "[", set, "]");
      } else if (e == 'b' || e == 'B') {
        fail("regex '", pattern, "': \\", e, " (a word boundary) is not supported: Oniguruma and PCRE2 disagree "
             "on what a word character is");
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      // A POSIX class [:alpha:] inside a class: copy it whole.
      const size_t close = pattern.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(pattern.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

std::string escape_regex(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view(R"(\^$.|?*+()[]{}-/#&~ )").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  bool jit = false;
  ~Compiled() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

Regex::Regex(std::string_view pattern, std::string_view where) : pattern_(pattern), compiled_(new Compiled) {
  std::string translated;
  try {
    translated = oniguruma_to_pcre2(pattern);
  } catch (const Error& e) {
    fail(where, ": ", e.what());
  }
  int error = 0;
  PCRE2_SIZE offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (!compiled_->code)
    fail(where, ": regex '", pattern, "' does not compile (PCRE2: ", pcre2_message(error), " at offset ", offset, ")");
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
  compiled_->context = pcre2_match_context_create(nullptr);
  if (compiled_->jit) pcre2_jit_stack_assign(compiled_->context, thread_jit_stack, nullptr);
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<Match> Regex::find_all(std::string_view text) const {
  std::vector<Match> matches;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> owned(data, &pcre2_match_data_free);
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    // The text was checked once on entry: no need for PCRE2 to check it again at every start.
    const int rc = compiled_->jit
                       ? pcre2_jit_match(compiled_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data,
                                         compiled_->context)
                       : pcre2_match(compiled_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data,
                                     compiled_->context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("regex '", pattern_, "' failed on a text of ", text.size(), " bytes (PCRE2: ", pcre2_message(rc), ")");
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const Match m{ovector[0], ovector[1]};
    matches.push_back(m);
    if (m.end > m.begin) {
      start = m.end;
    } else {
      if (m.end >= text.size()) break;
      start = m.end + code_point_at(text, m.end).length;
    }
  }
  return matches;
}

}  // namespace strata::text
