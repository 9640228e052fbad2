#include "strata/layers/gated_delta_rule.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <limits>
#include <vector>

#include "strata/core/error.h"
#include "strata/kernels/unit_lower_inverse.h"
#include "strata/layers/delta_rule_chunk_states.h"
#include "strata/layers/tf32_matmul.h"

namespace strata {

namespace {

struct RuleDims {
  int64_t batch, seq, heads, key_dim, value_dim;
};

std::string shape_of(const at::Tensor& t) { return cat(t.sizes()); }

RuleDims check_inputs(const char* fn, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& g, const at::Tensor& beta, const std::optional<at::Tensor>& initial_state) {
  if (k.dim() != 4) fail(fn, ": k must be [B, T, H, Dk], got shape ", shape_of(k));
  if (v.dim() != 4) fail(fn, ": v must be [B, T, H, Dv], got shape ", shape_of(v));
  const RuleDims d{k.size(0), k.size(1), k.size(2), k.size(3), v.size(3)};
  if (d.seq < 1) fail(fn, ": the sequence must hold at least one token, got T = ", d.seq);
  if (q.sizes() != k.sizes()) fail(fn, ": q must have k's shape ", shape_of(k), ", got shape ", shape_of(q));
  if (v.sizes().slice(0, 3) != k.sizes().slice(0, 3))
    fail(fn, ": v must be [B, T, H, Dv] with [B, T, H] = [", d.batch, ", ", d.seq, ", ", d.heads, "], got shape ",
         shape_of(v));
  const std::vector<int64_t> per_token{d.batch, d.seq, d.heads};
  if (g.sizes() != per_token)
    fail(fn, ": g must be [B, T, H] = ", at::IntArrayRef(per_token), ", got shape ", shape_of(g));
  if (beta.sizes() != per_token)
    fail(fn, ": beta must be [B, T, H] = ", at::IntArrayRef(per_token), ", got shape ", shape_of(beta));
  if (initial_state && initial_state->sizes() != at::IntArrayRef{d.batch, d.heads, d.key_dim, d.value_dim})
    fail(fn, ": initial_state must be [B, H, Dk, Dv] = [", d.batch, ", ", d.heads, ", ", d.key_dim, ", ", d.value_dim,
         "], got shape ", shape_of(*initial_state));
  return d;
}

// float32, unless an input is float64 (then float64, so tests can check the algebra exactly).
at::ScalarType compute_dtype(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return at::promote_types(at::promote_types(q.scalar_type(), k.scalar_type()),
                           at::promote_types(v.scalar_type(), at::kFloat));
}

// [B, T, H, ...] -> [B, H, T, ...] in the compute dtype.
// One copy that converts and lays out contiguously (a strided result would be copied again by
// the reshapes into chunks).
at::Tensor heads_first(const at::Tensor& t, at::ScalarType dtype) {
  return t.transpose(1, 2).to(dtype, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous);
}

at::Tensor start_state(const std::optional<at::Tensor>& initial_state, const RuleDims& d, const at::Tensor& like) {
  if (initial_state) return initial_state->to(like.scalar_type());
  return at::zeros({d.batch, d.heads, d.key_dim, d.value_dim}, like.options());
}

// [B, H, T, ...] -> [B, H, T / chunk, chunk, ...] after zero-padding T up to a multiple of chunk.
// Padded steps have k = 0, beta = 0 and g = 0: they neither decay nor write the state, so the
// final state is the one after the last real token.
at::Tensor into_chunks(const at::Tensor& t, int64_t chunk) {
  const auto pad = (chunk - t.size(2) % chunk) % chunk;
  const auto trailing = t.dim() - 3;  // dims after T
  std::vector<int64_t> padding(2 * trailing + 2, 0);  // (left, right) per dim, last dim first
  padding.back() = pad;
  auto padded = pad > 0 ? at::constant_pad_nd(t, padding) : t;  // padding copies even when it adds nothing
  auto shape = t.sizes().vec();
  shape[2] = padded.size(2) / chunk;
  shape.insert(shape.begin() + 3, chunk);
  return padded.reshape(shape);
}

// decay_log[..., i, j] = G[i] - G[j] with G the cumulative sum of g within the chunk: the log of
// the decay a write at step j undergoes until it is read at step i; -inf above the diagonal
// (reads never see later writes). Subtracting cumulative sums is what HF and flash-linear-attention
// do, and strata follows them so that float32 gradients match theirs: on heads whose cumulative
// decay reaches the hundreds, d/dA_log is a sum with heavy cancellation, and summing the spans
// directly instead moves it by ~1e-2 relative (towards float64), failing HF's 1e-3 gradient check.
at::Tensor pairwise_log_decay(const at::Tensor& g) {
  const auto n = g.size(-1);
  auto cumulative = g.cumsum(-1);
  auto spans = cumulative.unsqueeze(-1) - cumulative.unsqueeze(-2);
  auto on_or_below_diagonal = at::ones({n, n}, g.options().dtype(at::kBool)).tril(0);
  return spans.masked_fill(on_or_below_diagonal.logical_not(), -std::numeric_limits<double>::infinity());
}

}  // namespace

DeltaRuleOutput gated_delta_rule_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         const at::Tensor& g, const at::Tensor& beta, int64_t chunk_size,
                                         const std::optional<at::Tensor>& initial_state) {
  const auto d = check_inputs("gated_delta_rule_chunked", q, k, v, g, beta, initial_state);
  if (chunk_size < 1) fail("gated_delta_rule_chunked: chunk_size must be positive, got ", chunk_size);
  const auto dtype = compute_dtype(q, k, v);
  // Every product runs in the compute dtype whatever autocast says (U and W feed the state every
  // later chunk reads; autocast would also cast each float32 operand to bf16 first). Where out
  // is bf16 or fp16 anyway, the float32 products run on TF32 tensor cores.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const bool reduced_output = v.scalar_type() == at::kBFloat16 || v.scalar_type() == at::kHalf;
  const bool tf32 = reduced_output && dtype == at::kFloat;
  const auto product = [tf32](const at::Tensor& a, const at::Tensor& b) { return matmul_tf32_if(tf32, a, b); };
  // Shapes below: [B, H, N chunks, C steps, ...].
  auto qc = into_chunks(heads_first(q, dtype), chunk_size);
  auto kc = into_chunks(heads_first(k, dtype), chunk_size);
  auto vc = into_chunks(heads_first(v, dtype), chunk_size);
  auto gc = into_chunks(heads_first(g, dtype), chunk_size);  // [B, H, N, C]
  auto bc = into_chunks(heads_first(beta, dtype), chunk_size).unsqueeze(-1);

  auto decay = at::exp(pairwise_log_decay(gc));                     // [.., C, C], zero above the diagonal
  auto decay_from_start = at::exp(gc.cumsum(-1)).unsqueeze(-1);      // through step i, from the chunk start
  auto decay_to_end = decay.select(-2, chunk_size - 1).unsqueeze(-1);  // after step j, to the chunk end
  auto decay_whole = decay_from_start.select(-2, chunk_size - 1).squeeze(-1);  // [B, H, N]

  // Within a chunk, the corrections delta_i solve the unit lower-triangular system
  //   delta_i + beta_i sum_{j<i} decay_ij (k_i . k_j) delta_j = beta_i v_i - beta_i decay_from_start_i S0^T k_i
  // (the UT transform), so delta = U - W S0 with U, W computed for every chunk at once. The
  // coupling's diagonal and upper part are never masked: the inversion reads only its strictly
  // lower triangle and sends gradient only there.
  auto coupling = bc * decay * product(kc, kc.transpose(-1, -2));
  // T = (I + strictly_lower(coupling))^-1, then products: triangular solves are slow on GPUs, and inverting has C
  // columns to solve for instead of the Dv + Dk of solving for U and W directly (64 vs 256 for
  // Qwen3-Next), forward and backward. On CUDA a kernel inverts each chunk's matrix in one block.
  auto T = kernels::unit_lower_inverse(coupling);
  auto U = product(T, bc * vc);
  auto W = product(T, bc * decay_from_start * kc);

  // Reads: q_i against the decayed entering state and the corrections of steps j <= i.
  auto scores = product(qc, kc.transpose(-1, -2)) * decay;
  auto q_from_start = qc * decay_from_start;
  auto k_to_end = kc * decay_to_end;

  // The one sequential part: the state entering each chunk, and each chunk's corrections.
  auto states = delta_rule_chunk_states(U, W, k_to_end, decay_whole, start_state(initial_state, d, qc), tf32);
  auto out = product(q_from_start, states.entering) + product(scores, states.delta);
  out = out.flatten(2, 3).narrow(2, 0, d.seq).transpose(1, 2);
  return {out.to(v.scalar_type()), states.final_state};
}

DeltaRuleOutput gated_delta_rule_recurrent(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& g, const at::Tensor& beta,
                                           const std::optional<at::Tensor>& initial_state) {
  const auto d = check_inputs("gated_delta_rule_recurrent", q, k, v, g, beta, initial_state);
  const auto dtype = compute_dtype(q, k, v);
  auto qh = heads_first(q, dtype).unsqueeze(-2);  // [B, H, T, 1, Dk]: row vectors for matmul
  auto kh = heads_first(k, dtype).unsqueeze(-2);
  auto vh = heads_first(v, dtype);
  auto decay = at::exp(heads_first(g, dtype)).unsqueeze(-1).unsqueeze(-1);  // [B, H, T, 1, 1]
  auto bh = heads_first(beta, dtype).unsqueeze(-1);                         // [B, H, T, 1]

  auto state = start_state(initial_state, d, vh);
  std::vector<at::Tensor> outs;
  outs.reserve(d.seq);
  for (int64_t t = 0; t < d.seq; ++t) {
    auto k_t = kh.select(2, t);  // [B, H, 1, Dk]
    state = state * decay.select(2, t);
    auto predicted = at::matmul(k_t, state).squeeze(-2);  // S^T k
    auto delta = (vh.select(2, t) - predicted) * bh.select(2, t);
    state = state + at::matmul(k_t.transpose(-1, -2), delta.unsqueeze(-2));
    outs.push_back(at::matmul(qh.select(2, t), state).squeeze(-2));
  }
  auto out = at::stack(outs, 1);  // [B, T, H, Dv]
  return {out.to(v.scalar_type()), state};
}

}  // namespace strata
