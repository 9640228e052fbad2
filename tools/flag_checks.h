#pragma once
// CLI11 validators that parse a flag's text strictly (core/parse_number.h: the whole text, no
// clamping at the integer limits, no NaN or infinity) and check its range, so a bad value is
// refused before anything runs, with the flag named by CLI11 ("--lr: ...") and what it expects.
#include <CLI/CLI.hpp>

#include <cstdint>

namespace strata::tools {

CLI::Validator integer_at_least(int64_t min);
CLI::Validator unsigned_integer();
// A finite real in [min, max] (max_open: [min, max)).
CLI::Validator real_in(double min, double max, bool max_open = false);
CLI::Validator finite_real();
CLI::Validator real_at_least(double min);  // finite, >= min
CLI::Validator real_above(double min);     // finite, > min

}  // namespace strata::tools
