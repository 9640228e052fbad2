// The raw launchers of a CPU-only build: kernels/*.cu define them when -DSTRATA_CUDA=ON. The fused
// ops never reach these (use_cuda_kernels is false), but a direct call says what is missing.
#ifndef STRATA_CUDA

#include "strata/core/error.h"
#include "strata/kernels/hc_boundary_launch.h"
#include "strata/kernels/hc_maps_launch.h"
#include "strata/kernels/l2_normalize_heads_launch.h"
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

void sinkhorn_forward(const float*, float*, int64_t, int64_t, int64_t, float, Stream) { no_kernels("sinkhorn_forward"); }

void sinkhorn_backward(const float*, const float*, float*, float*, int64_t, int64_t, int64_t, float, Stream) {
  no_kernels("sinkhorn_backward");
}

int64_t sinkhorn_scratch_floats(int64_t, int64_t, int64_t) { no_kernels("sinkhorn_scratch_floats"); }

void row_rstd(Dtype, const void*, float*, int64_t, int64_t, float, Stream) { no_kernels("row_rstd"); }

void hc_collapse_forward(Dtype, const void*, const float*, void*, int64_t, int64_t, int64_t, Stream) {
  no_kernels("hc_collapse_forward");
}

void hc_collapse_backward(Dtype, const void*, const void*, const float*, void*, float*, int64_t, int64_t, int64_t,
                          Stream) {
  no_kernels("hc_collapse_backward");
}

void hc_combine_forward(Dtype, const void*, const void*, const float*, const float*, void*, int64_t, int64_t, int64_t,
                        Stream) {
  no_kernels("hc_combine_forward");
}

void hc_combine_backward(Dtype, const void*, const void*, const void*, const float*, const float*, void*, void*,
                         float*, float*, int64_t, int64_t, int64_t, Stream) {
  no_kernels("hc_combine_backward");
}

void hc_boundary_combine(Dtype, const void*, const void*, const float*, const float*, void*, float*, int64_t, int64_t,
                         int64_t, float, Stream) {
  no_kernels("hc_boundary_combine");
}

void hc_boundary_forward(const void*, const void*, const float*, const float*, const void*, const float*,
                         const float*, float, float, void*, void*, float*, float*, int64_t, int64_t, int64_t, Stream) {
  no_kernels("hc_boundary_forward");
}

void hc_boundary_collapse(Dtype, const void*, const void*, const float*, const float*, const float*, float, void*,
                          float*, int64_t, int64_t, int64_t, Stream) {
  no_kernels("hc_boundary_collapse");
}

void hc_boundary_projection_grad(Dtype, const void*, const void*, const float*, const float*, const float*,
                                 const float*, const float*, float, void*, float*, float*, float*, float*, int64_t,
                                 int64_t, int64_t, Stream) {
  no_kernels("hc_boundary_projection_grad");
}

void hc_boundary_bias_grads(const float*, const float*, int64_t, int64_t, float*, float*, Stream) {
  no_kernels("hc_boundary_bias_grads");
}

void hc_boundary_backward(Dtype, const void*, const void*, const float*, const void*, const float*, const void*,
                          const void*, const void*, const float*, const float*, void*, void*, float*, float*, int64_t,
                          int64_t, int64_t, Stream) {
  no_kernels("hc_boundary_backward");
}

void hc_post_res_forward(const float*, const float*, const float*, float*, float*, int64_t, int64_t, int64_t, float,
                         Stream) {
  no_kernels("hc_post_res_forward");
}

int64_t hc_post_res_workspace_floats(int64_t, int64_t, int64_t) { no_kernels("hc_post_res_workspace_floats"); }

void hc_post_res_backward(const float*, const float*, const float*, const float*, const float*, float*, float*, float*,
                          float*, int64_t, int64_t, int64_t, float, Stream) {
  no_kernels("hc_post_res_backward");
}

void l2_normalize_heads_forward(Dtype, const void*, RowStrides, void*, int64_t, int64_t, int64_t, int64_t, int64_t,
                                float, float, Stream) {
  no_kernels("l2_normalize_heads_forward");
}

void l2_normalize_heads_backward(Dtype, const void*, RowStrides, const void*, RowStrides, void*, int64_t, int64_t,
                                 int64_t, int64_t, int64_t, float, float, Stream) {
  no_kernels("l2_normalize_heads_backward");
}

void chunk_state_scan(const float*, const float*, const float*, const float*, const float*, const float*,
                      const int64_t*, int64_t, float*, float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                      float, float, bool, Stream) {
  no_kernels("chunk_state_scan");
}

void gated_rms_norm_forward(Dtype, Dtype, const void*, RowStrides, const void*, RowStrides, const float*, void*,
                            float*, int64_t, int64_t, int64_t, int64_t, float, Stream) {
  no_kernels("gated_rms_norm_forward");
}

void gated_rms_norm_backward(Dtype, Dtype, const void*, const void*, RowStrides, const void*, RowStrides,
                             const float*, const float*, void*, void*, float*, int64_t, int64_t, int64_t, int64_t,
                             int64_t, Stream) {
  no_kernels("gated_rms_norm_backward");
}

void causal_conv1d_silu_forward(Dtype, const void*, int64_t, int64_t, const void*, void*, const int64_t*, int64_t,
                                int64_t, int64_t, int64_t, int64_t, Stream) {
  no_kernels("causal_conv1d_silu_forward");
}

void causal_conv1d_silu_backward(Dtype, const void*, const void*, int64_t, int64_t, const void*, void*, float*,
                                 const int64_t*, int64_t, int64_t, int64_t, int64_t, int64_t, Stream) {
  no_kernels("causal_conv1d_silu_backward");
}

void unit_lower_inverse(const float*, float*, int64_t, int64_t, Stream) { no_kernels("unit_lower_inverse"); }

void gated_delta_rule_step(Dtype, const float*, HeadStrides, const float*, HeadStrides, const void*, HeadStrides,
                           const float*, HeadStrides, const void*, HeadStrides, float*, void*, int64_t, int64_t,
                           int64_t, int64_t, Stream) {
  no_kernels("gated_delta_rule_step");
}

int64_t gated_delta_chunk_workspace_bytes(int64_t, int64_t, int64_t, int64_t, int64_t) {
  no_kernels("gated_delta_chunk_workspace_bytes");
}

void gated_delta_chunk_forward(const GatedDeltaChunkForward&, Stream) { no_kernels("gated_delta_chunk_forward"); }

int64_t gated_delta_chunk_backward_workspace_bytes(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t) {
  no_kernels("gated_delta_chunk_backward_workspace_bytes");
}

void gated_delta_chunk_backward(const GatedDeltaChunkBackward&, Stream) { no_kernels("gated_delta_chunk_backward"); }

}  // namespace strata::kernels::launch

#endif
