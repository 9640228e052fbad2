#include "delta_rule_inputs.h"

#include "strata/core/error.h"

namespace strata {

std::string shape_of(const at::Tensor& t) { return cat(t.sizes()); }

DeltaRuleDims check_qkv(const char* fn, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (k.dim() != 4) fail(fn, ": k must be [B, T, H, Dk], got shape ", shape_of(k));
  if (v.dim() != 4) fail(fn, ": v must be [B, T, H, Dv], got shape ", shape_of(v));
  const DeltaRuleDims d{k.size(0), k.size(1), k.size(2), k.size(3), v.size(3)};
  if (d.seq < 1) fail(fn, ": the sequence must hold at least one token, got T = ", d.seq);
  if (q.sizes() != k.sizes()) fail(fn, ": q must have k's shape ", shape_of(k), ", got shape ", shape_of(q));
  if (v.sizes().slice(0, 3) != k.sizes().slice(0, 3))
    fail(fn, ": v must be [B, T, H, Dv] with [B, T, H] = [", d.batch, ", ", d.seq, ", ", d.heads, "], got shape ",
         shape_of(v));
  return d;
}

void check_initial_state(const char* fn, const std::optional<at::Tensor>& initial_state, const DeltaRuleDims& d,
                         int64_t rows, bool packed) {
  if (initial_state && initial_state->sizes() != at::IntArrayRef{rows, d.heads, d.key_dim, d.value_dim})
    fail(fn, ": initial_state must be [", packed ? "N" : "B", ", H, Dk, Dv] = [", rows, ", ", d.heads, ", ", d.key_dim,
         ", ", d.value_dim, "], got shape ", shape_of(*initial_state));
}

at::ScalarType compute_dtype(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return at::promote_types(at::promote_types(q.scalar_type(), k.scalar_type()),
                           at::promote_types(v.scalar_type(), at::kFloat));
}

at::Tensor heads_first(const at::Tensor& t, at::ScalarType dtype) {
  return t.transpose(1, 2).to(dtype, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous);
}

at::Tensor start_state(const std::optional<at::Tensor>& initial_state, int64_t rows, const DeltaRuleDims& d,
                       const at::Tensor& like) {
  if (initial_state) return initial_state->to(like.scalar_type());
  return at::zeros({rows, d.heads, d.key_dim, d.value_dim}, like.options());
}

}  // namespace strata
