#include "strata/kernels/gated_delta_rule_step.h"

#include <ATen/core/grad_mode.h>
#include <c10/core/DeviceGuard.h>

#include "strata/core/dtype.h"
#include "strata/core/error.h"

namespace strata::kernels {

namespace {

// q, k [B, H, Dk], v [B, H, Dv], g and beta [B, H], state [B, H, Dk, Dv].
void check_shapes(const char* fn, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                  const at::Tensor& beta, const at::Tensor& state) {
  if (state.dim() != 4) fail(fn, ": state must be [B, H, Dk, Dv], got shape ", state.sizes());
  const auto batch = state.size(0), heads = state.size(1), key_dim = state.size(2), value_dim = state.size(3);
  auto expect = [&](const at::Tensor& t, at::IntArrayRef shape, const char* name, const char* dims) {
    if (t.sizes() != shape) fail(fn, ": ", name, " must be ", dims, " = ", shape, " (from the state), got shape ", t.sizes());
  };
  expect(q, {batch, heads, key_dim}, "q", "[B, H, Dk]");
  expect(k, {batch, heads, key_dim}, "k", "[B, H, Dk]");
  expect(v, {batch, heads, value_dim}, "v", "[B, H, Dv]");
  expect(g, {batch, heads}, "g", "[B, H]");
  expect(beta, {batch, heads}, "beta", "[B, H]");
}

bool kernel_dtype(const at::Tensor& t) {
  const auto type = t.scalar_type();
  return type == at::kFloat || type == at::kBFloat16 || type == at::kHalf;
}

// t as the kernel reads it: in `dtype`, with a contiguous last dimension.
at::Tensor readable(const at::Tensor& t, at::ScalarType dtype) {
  auto typed = t.to(dtype);
  return typed.dim() < 3 || typed.stride(-1) == 1 || typed.size(-1) == 1 ? typed : typed.contiguous();
}

launch::HeadStrides head_strides(const at::Tensor& t) { return {t.stride(0), t.stride(1)}; }

}  // namespace

DeltaRuleStep gated_delta_rule_step_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                              const at::Tensor& g, const at::Tensor& beta, const at::Tensor& state) {
  check_shapes("gated_delta_rule_step_reference", q, k, v, g, beta, state);
  auto dtype = at_least_float(state.scalar_type());
  for (const auto* t : {&q, &k, &v, &g, &beta}) dtype = at::promote_types(dtype, t->scalar_type());
  auto kd = k.to(dtype), qd = q.to(dtype);
  auto s = at::exp(g.to(dtype)).unsqueeze(-1).unsqueeze(-1) * state.to(dtype);
  auto remembered = at::matmul(kd.unsqueeze(-2), s).squeeze(-2);  // S^T k: what the state holds at k
  auto u = beta.to(dtype).unsqueeze(-1) * (v.to(dtype) - remembered);
  s = s + kd.unsqueeze(-1) * u.unsqueeze(-2);
  auto out = at::matmul(qd.unsqueeze(-2), s).squeeze(-2);
  return {out.to(v.scalar_type()), s};
}

bool gated_delta_rule_step_kernel_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& g, const at::Tensor& beta, const at::Tensor& state) {
  if (!use_cuda_kernels(v) || state.dim() != 4 || state.scalar_type() != at::kFloat || !state.is_contiguous())
    return false;
  for (const auto* t : {&q, &k, &g, &beta, &state})
    if (t->device() != v.device() || !kernel_dtype(*t)) return false;
  if (at::GradMode::is_enabled())
    for (const auto* t : {&q, &k, &v, &g, &beta, &state})
      if (t->requires_grad()) return false;
  return state.size(2) <= launch::kMaxDeltaStepKeyDim;
}

at::Tensor gated_delta_rule_step_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& g, const at::Tensor& beta, const at::Tensor& state) {
  const auto fn = "gated_delta_rule_step_cuda";
  if (!cuda_kernels_built()) fail(fn, ": this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  check_shapes(fn, q, k, v, g, beta, state);
  if (!gated_delta_rule_step_kernel_applies(q, k, v, g, beta, state))
    fail(fn, ": v ", v.scalar_type(), " on ", v.device(), ", state ", state.scalar_type(), " on ", state.device(),
         (state.is_contiguous() ? "" : " (not contiguous)"), " with Dk = ", state.size(2),
         ": expected CUDA tensors on one device in float32, bfloat16 or float16, a contiguous float32 state, Dk up to ",
         launch::kMaxDeltaStepKeyDim, ", and no gradient to record");
  // v and beta share the kernel's storage dtype: v's, or float32 when beta's differs (both widen
  // exactly, and out is rounded back to v's dtype).
  const auto dtype = beta.scalar_type() == v.scalar_type() ? v.scalar_type() : at::kFloat;
  auto qf = readable(q, at::kFloat), kf = readable(k, at::kFloat), gf = readable(g, at::kFloat);
  auto vt = readable(v, dtype), bt = readable(beta, dtype);
  auto out = at::empty(v.sizes(), v.options().dtype(dtype));
  c10::DeviceGuard guard(v.device());
  launch::gated_delta_rule_step(launch_dtype(dtype, "gated_delta_rule_step_cuda: v"), qf.data_ptr<float>(),
                                head_strides(qf), kf.data_ptr<float>(), head_strides(kf), vt.data_ptr(),
                                head_strides(vt), gf.data_ptr<float>(), head_strides(gf), bt.data_ptr(),
                                head_strides(bt), state.data_ptr<float>(), out.data_ptr(), state.size(0), state.size(1),
                                state.size(2), state.size(3), current_stream(v.device()));
  return out.to(v.scalar_type());
}

at::Tensor gated_delta_rule_step_(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                  const at::Tensor& beta, at::Tensor& state) {
  if (gated_delta_rule_step_kernel_applies(q, k, v, g, beta, state))
    return gated_delta_rule_step_cuda(q, k, v, g, beta, state);
  auto step = gated_delta_rule_step_reference(q, k, v, g, beta, state);
  // In place where the state can hold the result, as the kernel does: a CUDA graph captured over
  // the step (generate's decode) reads and writes the same memory at every replay. Rebound where
  // autograd records the step or the state's dtype widened.
  const bool recorded = at::GradMode::is_enabled() && step.state.requires_grad();
  if (!recorded && step.state.scalar_type() == state.scalar_type() && step.state.device() == state.device())
    state.copy_(step.state);
  else
    state = step.state;
  return step.out;
}

}  // namespace strata::kernels
