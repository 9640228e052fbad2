#pragma once
// Strict parsing of numbers from text (command-line flags, tracker files, environment
// variables): the whole text must be one number, integers must fit their type exactly (no
// clamping at the limits, no wrap-around) and be written in plain decimal (no '+', no leading
// zero, no "-0": the text std::to_string gives), and reals must be finite. Errors name `what` (a
// flag such as "--lr", or a file) and the text. Needs no LibTorch, so the fuzzer builds it alone.
#include <cstdint>
#include <string>
#include <string_view>

namespace strata {

int64_t parse_int64(std::string_view text, const std::string& what);
uint64_t parse_uint64(std::string_view text, const std::string& what);
double parse_finite_double(std::string_view text, const std::string& what);

}  // namespace strata
