#pragma once
// What the gated delta rules (Gated DeltaNet's, layers/gated_delta_rule.h, and Gated DeltaNet-2's,
// layers/gated_delta_rule2.h) share in checking their inputs, laying them out and running over
// packed documents.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "strata/layers/gated_delta_rule.h"

namespace strata {

struct DeltaRuleDims {
  int64_t batch, seq, heads, key_dim, value_dim;
  int64_t key_heads;  // of q and k: heads / key_heads value heads read each
};

std::string shape_of(const at::Tensor& t);

// q and k [B, T, Hk, Dk] of one shape, v [B, T, H, Dv] with k's [B, T] and H a multiple of Hk,
// T >= 1 (errors name `fn`): their sizes.
DeltaRuleDims check_qkv(const char* fn, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// q or k with its Hk key heads on dimension head_dim repeated to the `heads` value heads that read
// them: key head h serves value heads h r .. h r + r - 1 (r = heads / Hk; Megatron's and HF's
// repeat_interleave); t itself when Hk = heads.
at::Tensor per_value_head(const at::Tensor& t, int64_t heads, int64_t head_dim);

// One state per row of the batch, or per document when packed: `rows` of them.
void check_initial_state(const char* fn, const std::optional<at::Tensor>& initial_state, const DeltaRuleDims& d,
                         int64_t rows, bool packed);

// float32, unless an input is float64 (then float64, so tests can check the algebra exactly).
at::ScalarType compute_dtype(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// [B, T, H, ...] -> [B, H, T, ...] in the compute dtype.
// One copy that converts and lays out contiguously (a strided result would be copied again by
// the reshapes into chunks).
at::Tensor heads_first(const at::Tensor& t, at::ScalarType dtype);

// The initial state in `like`'s dtype, or `rows` zero states.
at::Tensor start_state(const std::optional<at::Tensor>& initial_state, int64_t rows, const DeltaRuleDims& d,
                       const at::Tensor& like);

// A rule over token slices: `part` narrows an input [B, T, ...] to the slice's tokens, `start` is
// its initial state (none: zeros) and `d` its sizes.
using DeltaRuleSlice = std::function<DeltaRuleOutput(const std::function<at::Tensor(const at::Tensor&)>& part,
                                                     const std::optional<at::Tensor>& start, const DeltaRuleDims& d)>;

// `rule` over the whole batch, or with cu_seqlens over each packed document on its own, from its
// own initial state, the outputs joined along T and the final states along N; the initial state
// and the documents are checked first (errors name `fn`).
DeltaRuleOutput over_rows_or_documents(const char* fn, const DeltaRuleDims& d,
                                       const std::optional<at::Tensor>& initial_state,
                                       const std::optional<at::Tensor>& cu_seqlens, const DeltaRuleSlice& rule);

}  // namespace strata
