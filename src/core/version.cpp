#include "strata/core/version.h"

#include <torch/version.h>

#include "strata/core/error.h"

namespace strata {

std::string version() { return STRATA_VERSION; }

std::string build_description() {
#ifdef STRATA_CUDA
  const char* kernels = "CUDA kernels";
#else
  const char* kernels = "CPU";
#endif
  return cat("strata ", version(), " (LibTorch ", TORCH_VERSION, ", ", kernels, ")");
}

}  // namespace strata
