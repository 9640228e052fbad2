#include "delta_rule_inputs.h"

#include <vector>

#include "strata/core/error.h"
#include "strata/kernels/packed_documents.h"

namespace strata {

std::string shape_of(const at::Tensor& t) { return cat(t.sizes()); }

DeltaRuleDims check_qkv(const char* fn, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (k.dim() != 4) fail(fn, ": k must be [B, T, Hk, Dk], got shape ", shape_of(k));
  if (v.dim() != 4) fail(fn, ": v must be [B, T, H, Dv], got shape ", shape_of(v));
  const DeltaRuleDims d{v.size(0), v.size(1), v.size(2), k.size(3), v.size(3), k.size(2)};
  if (d.seq < 1) fail(fn, ": the sequence must hold at least one token, got T = ", d.seq);
  if (q.sizes() != k.sizes()) fail(fn, ": q must have k's shape ", shape_of(k), ", got shape ", shape_of(q));
  if (k.size(0) != d.batch || k.size(1) != d.seq || d.key_heads < 1 || d.heads % d.key_heads != 0)
    fail(fn, ": v must be [B, T, H, Dv] with k's [B, T] = [", k.size(0), ", ", k.size(1), "] and H a multiple of k's ",
         d.key_heads, " heads, got shape ", shape_of(v));
  return d;
}

at::Tensor per_value_head(const at::Tensor& t, int64_t heads, int64_t head_dim) {
  const auto per_key = heads / t.size(head_dim);
  return per_key == 1 ? t : t.repeat_interleave(per_key, head_dim);
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

DeltaRuleOutput over_rows_or_documents(const char* fn, const DeltaRuleDims& d,
                                       const std::optional<at::Tensor>& initial_state,
                                       const std::optional<at::Tensor>& cu_seqlens, const DeltaRuleSlice& rule) {
  if (!cu_seqlens) {
    check_initial_state(fn, initial_state, d, d.batch, false);
    return rule([](const at::Tensor& t) { return t; }, initial_state, d);
  }
  const auto bounds = kernels::document_bounds(fn, *cu_seqlens, d.batch, d.seq);
  const auto documents = static_cast<int64_t>(bounds.size()) - 1;
  check_initial_state(fn, initial_state, d, documents, true);
  std::vector<at::Tensor> outs, finals;
  for (int64_t doc = 0; doc < documents; ++doc) {
    const auto first = bounds[doc], length = bounds[doc + 1] - bounds[doc];
    auto start = initial_state ? std::optional<at::Tensor>(initial_state->narrow(0, doc, 1)) : std::nullopt;
    auto one = rule([&](const at::Tensor& t) { return t.narrow(1, first, length); }, start,
                    DeltaRuleDims{1, length, d.heads, d.key_dim, d.value_dim, d.key_heads});
    outs.push_back(one.out);
    finals.push_back(one.final_state);
  }
  return {at::cat(outs, 1), at::cat(finals, 0)};
}

}  // namespace strata
