// libFuzzer target for the numbers of command-line flags (core/parse_number.h, behind every
// numeric flag's validator): any bytes are either refused with strata::Error, whose message names
// the flag and stays short however long the text, or read as the number the text spells. An
// accepted integer prints back (std::to_string) to the very text, so the text has one meaning
// (CLI11, converting it again, reads the same number); an accepted real is finite, is the value
// strtod reads from the text, and survives printing (shortest form) and parsing unchanged.
// Anything else (another exception, a sanitizer report, a value changed on the way) aborts.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "strata/core/error.h"
#include "strata/core/parse_number.h"

namespace {

constexpr const char* kFlag = "--fuzz-flag";
// The flag, the reason and at most 40 characters of the text (parse_number.cpp shortens it).
constexpr size_t kMaxMessage = 200;

[[noreturn]] void broken(const char* what, std::string_view text, const std::string& detail) {
  std::fprintf(stderr, "cli number: %s for text '%.*s': %s\n", what, static_cast<int>(text.size()), text.data(),
               detail.c_str());
  std::abort();
}

void check_refusal(const strata::Error& e, std::string_view text) {
  const std::string message = e.what();
  if (message.rfind(kFlag, 0) != 0) broken("an error that does not start with the flag", text, message);
  if (message.size() > kMaxMessage) broken("an error longer than the limit", text, message);
}

template <class Int>
void check_integer(Int (*parse)(std::string_view, const std::string&), std::string_view text) {
  Int value;
  try {
    value = parse(text, kFlag);
  } catch (const strata::Error& e) {
    check_refusal(e, text);
    return;
  }
  if (std::to_string(value) != text) broken("an accepted integer that prints otherwise", text, std::to_string(value));
}

void check_real(std::string_view text) {
  double value;
  try {
    value = strata::parse_finite_double(text, kFlag);
  } catch (const strata::Error& e) {
    check_refusal(e, text);
    return;
  }
  if (!std::isfinite(value)) broken("a non-finite real accepted", text, std::to_string(value));
  // An independent reading of the same text (glibc's strtod, the "C" locale of a fresh process).
  const std::string terminated(text);
  const double reference = std::strtod(terminated.c_str(), nullptr);
  if (std::memcmp(&reference, &value, sizeof value) != 0)
    broken("a real that strtod reads otherwise", text, std::to_string(value) + " vs " + std::to_string(reference));
  char printed[64];
  const auto [end, error] = std::to_chars(printed, printed + sizeof printed, value);
  if (error != std::errc()) broken("a real that does not print", text, "");
  const std::string_view shortest(printed, static_cast<size_t>(end - printed));
  double again;
  try {
    again = strata::parse_finite_double(shortest, kFlag);
  } catch (const strata::Error& e) {
    broken("an accepted real whose printed form is refused", text, e.what());
  }
  if (std::memcmp(&again, &value, sizeof value) != 0)
    broken("a real changed by printing and parsing", text, std::string(shortest));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    check_integer<int64_t>(strata::parse_int64, text);
    check_integer<uint64_t>(strata::parse_uint64, text);
    check_real(text);
  } catch (const std::exception& e) {  // anything but strata::Error escaped a parser
    broken("an exception other than strata::Error", text, e.what());
  }
  return 0;
}
