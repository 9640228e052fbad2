#pragma once
// strata's version, and the LibTorch and CUDA it was built with, for `strata --version` and the
// configuration a run records.
#include <string>

namespace strata {

std::string version();           // "0.1.0"
std::string build_description();  // "strata 0.1.0 (LibTorch 1.13.0, CPU)"

}  // namespace strata
