#include "strata/core/parse_number.h"

#include <charconv>
#include <limits>
#include <cmath>
#include <system_error>

#include "strata/core/error.h"

namespace strata {

namespace {

// A quoted, shortened copy of the text for errors: a hostile flag may be megabytes long.
std::string quoted(std::string_view text) {
  constexpr size_t kMaxChars = 40;
  std::string shown(text.substr(0, kMaxChars));
  if (text.size() > kMaxChars) shown += "...";
  return "'" + shown + "'";
}

// std::from_chars accepts no sign '+', no leading spaces and no "0x": exactly the plain decimal
// forms, which is what a flag should hold. It reports overflow instead of clamping.
template <class Int>
Int parse_integer(std::string_view text, const std::string& what, const char* expected) {
  Int value{};
  const auto* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error == std::errc::result_out_of_range)
    fail(what, " ", quoted(text), ": out of range for ", expected, " (", std::numeric_limits<Int>::min(), " to ",
         std::numeric_limits<Int>::max(), ")");
  if (error != std::errc() || stop != end || text.empty()) fail(what, " ", quoted(text), ": expected ", expected);
  // One spelling per integer: no leading zero ("010") and no "-0". CLI11 converts a flag's text
  // again after its validator, with strtoll's base 0, which reads "010" as octal 8; the text
  // this accepts must mean the same number to it.
  const auto digits = text.substr(text.front() == '-' ? 1 : 0);
  if (digits.front() == '0' && text != "0")
    fail(what, " ", quoted(text), ": expected ", expected, " in plain decimal (no leading zero, no -0)");
  return value;
}

}  // namespace

int64_t parse_int64(std::string_view text, const std::string& what) {
  return parse_integer<int64_t>(text, what, "an integer");
}

uint64_t parse_uint64(std::string_view text, const std::string& what) {
  return parse_integer<uint64_t>(text, what, "a non-negative integer");
}

double parse_finite_double(std::string_view text, const std::string& what) {
  double value = 0.0;
  const auto* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error == std::errc::result_out_of_range) fail(what, " ", quoted(text), ": out of range for a double");
  if (error != std::errc() || stop != end || text.empty()) fail(what, " ", quoted(text), ": expected a number");
  if (!std::isfinite(value)) fail(what, " ", quoted(text), ": expected a finite number");
  return value;
}

}  // namespace strata
