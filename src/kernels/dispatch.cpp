#include "strata/kernels/dispatch.h"

#ifdef STRATA_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include <cstdlib>
#include <string>

#include "strata/core/error.h"

namespace strata::kernels {

bool cuda_kernels_built() {
#ifdef STRATA_CUDA
  return true;
#else
  return false;
#endif
}

namespace {
// STRATA_FUSED_KERNELS=0 runs the twins on CUDA too: an A/B switch for benchmarks and for
// telling a kernel bug from a model bug. Read once.
bool kernels_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("STRATA_FUSED_KERNELS");
    return value == nullptr || std::string(value) != "0";
  }();
  return enabled;
}
}  // namespace

bool use_cuda_kernels(const at::Tensor& t) {
  if (!cuda_kernels_built() || !kernels_enabled() || !t.defined() || !t.is_cuda()) return false;
  const auto type = t.scalar_type();
  return type == at::kFloat || type == at::kBFloat16 || type == at::kHalf;
}

launch::Dtype launch_dtype(at::ScalarType type, const char* what) {
  switch (type) {
    case at::kFloat: return launch::Dtype::Float32;
    case at::kBFloat16: return launch::Dtype::BFloat16;
    case at::kHalf: return launch::Dtype::Float16;
    default: fail(what, " is ", type, "; the CUDA kernels take float32, bfloat16 or float16");
  }
}

std::vector<int64_t> shape_with(const at::Tensor& t, int64_t trailing, std::initializer_list<int64_t> tail) {
  auto sizes = t.sizes().vec();
  sizes.resize(sizes.size() - trailing);
  sizes.insert(sizes.end(), tail);
  return sizes;
}

launch::RowStrides row_strides(const at::Tensor& t) {
  const auto stride = [&](int64_t d) { return t.size(d) == 1 ? 0 : t.stride(d); };
  return {stride(0), stride(1), stride(2)};
}

launch::Stream current_stream(at::Device device) {
#ifdef STRATA_CUDA
  if (!device.is_cuda()) fail("strata kernels: tensor on ", device, " where a CUDA tensor was expected");
  return c10::cuda::getCurrentCUDAStream(device.index()).stream();
#else
  fail("strata kernels: this build has no CUDA kernels (configure with -DSTRATA_CUDA=ON); asked for a stream on ",
       device);
#endif
}

}  // namespace strata::kernels
