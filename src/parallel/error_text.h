#pragma once
// The reason an exception gives, in one line: c10::Error's message carries a C++ backtrace that
// would bury the part a user needs.
#include <c10/util/Exception.h>

#include <exception>
#include <string>

namespace strata::parallel {

inline std::string first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  return text.substr(0, text.find('\n'));
}

}  // namespace strata::parallel
