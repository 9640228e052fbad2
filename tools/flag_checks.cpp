#include "flag_checks.h"

#include <cstdio>

#include "strata/core/error.h"
#include "strata/core/parse_number.h"

namespace strata::tools {

namespace {

// Runs a parse-and-check, turning its strata::Error into CLI11's validation message.
template <class Check>
CLI::Validator validator(Check check, std::string description) {
  return CLI::Validator(
      [check](std::string& text) -> std::string {
        try {
          check(text);
          return {};
        } catch (const Error& e) {
          return e.what();
        }
      },
      std::move(description));
}

// CLI11 converts the text again after the validator (strtold, then a cast to double), which can
// land one ulp away from the value checked here; the exact hexadecimal form converts exactly.
void spell_exactly(std::string& text, double value) {
  char hex[40];
  std::snprintf(hex, sizeof hex, "%a", value);
  text = hex;
}

}  // namespace

CLI::Validator integer_at_least(int64_t min) {
  return validator(
      [min](const std::string& text) {
        const auto value = parse_int64(text, "value");
        if (value < min) fail("value ", value, ": expected at least ", min);
      },
      cat("INT >= ", min));
}

CLI::Validator unsigned_integer() {
  return validator([](const std::string& text) { parse_uint64(text, "value"); }, "UINT");
}

CLI::Validator real_in(double min, double max, bool max_open) {
  return validator(
      [=](std::string& text) {
        const auto value = parse_finite_double(text, "value");
        if (value < min || value > max || (max_open && value == max))
          fail("value ", value, ": expected a number in [", min, ", ", max, max_open ? ")" : "]");
        spell_exactly(text, value);
      },
      cat("REAL in [", min, ", ", max, max_open ? ")" : "]"));
}

CLI::Validator finite_real() {
  return validator([](std::string& text) { spell_exactly(text, parse_finite_double(text, "value")); }, "REAL");
}

CLI::Validator real_at_least(double min) {
  return validator(
      [min](std::string& text) {
        const auto value = parse_finite_double(text, "value");
        if (value < min) fail("value ", value, ": expected a number >= ", min);
        spell_exactly(text, value);
      },
      cat("REAL >= ", min));
}

CLI::Validator real_above(double min) {
  return validator(
      [min](std::string& text) {
        const auto value = parse_finite_double(text, "value");
        if (value <= min) fail("value ", value, ": expected a number > ", min);
        spell_exactly(text, value);
      },
      cat("REAL > ", min));
}

}  // namespace strata::tools
