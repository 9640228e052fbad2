// The raw launchers of a CPU-only build: kernels/*.cu define them when -DSTRATA_CUDA=ON. The fused
// ops never reach these (use_cuda_kernels is false), but a direct call says what is missing.
#ifndef STRATA_CUDA

#include "strata/core/error.h"
#include "strata/kernels/launch.h"

namespace strata::kernels::launch {

namespace {
[[noreturn]] void no_kernels(const char* name) {
  fail(name, ": this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
}
}  // namespace

void rms_norm_forward(Dtype, Dtype, const void*, const float*, void*, float*, int64_t, int64_t, float, Stream) {
  no_kernels("rms_norm_forward");
}

void rms_norm_backward(Dtype, Dtype, const void*, const void*, const float*, const float*, void*, float*, int64_t,
                       int64_t, int64_t, Stream) {
  no_kernels("rms_norm_backward");
}

void rotary(Dtype, const void*, int64_t, int64_t, int64_t, const float*, const float*, void*, int64_t, int64_t,
            int64_t, int64_t, int64_t, bool, Stream) {
  no_kernels("rotary");
}

void swiglu_forward(Dtype, const void*, void*, int64_t, int64_t, Stream) { no_kernels("swiglu_forward"); }

void swiglu_backward(Dtype, const void*, const void*, void*, int64_t, int64_t, Stream) {
  no_kernels("swiglu_backward");
}

void cross_entropy_forward(Dtype, const void*, const int64_t*, float*, float*, int64_t, int64_t, int64_t, int64_t,
                           Stream) {
  no_kernels("cross_entropy_forward");
}

void cross_entropy_backward(Dtype, const void*, const int64_t*, const float*, const float*, const float*, void*,
                            int64_t, int64_t, int64_t, int64_t, Stream) {
  no_kernels("cross_entropy_backward");
}

}  // namespace strata::kernels::launch

#endif
