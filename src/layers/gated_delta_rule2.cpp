#include "strata/layers/gated_delta_rule2.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "delta_rule_inputs.h"
#include "strata/core/error.h"

namespace strata {

namespace {

DeltaRuleDims check_inputs(const char* fn, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const at::Tensor& g, const at::Tensor& b, const at::Tensor& w) {
  const auto d = check_qkv(fn, q, k, v);
  if (d.key_heads != d.heads)
    fail(fn, ": q and k with ", d.key_heads, " key heads for v's ", d.heads, " value heads; expected one key head per ",
         "value head");
  // g and b live on the key channels, w on the value channels.
  for (auto [name, t] : {std::pair{"g", &g}, {"b", &b}})
    if (t->sizes() != k.sizes()) fail(fn, ": ", name, " must have k's shape ", shape_of(k), ", got shape ", shape_of(*t));
  if (w.sizes() != v.sizes()) fail(fn, ": w must have v's shape ", shape_of(v), ", got shape ", shape_of(w));
  return d;
}

// [B, H, T, D] -> [B, H, T / chunk, chunk, D] after zero-padding T up to a multiple of chunk.
// Padded steps have k = 0 (nothing erased or written) and g = 0 (nothing forgotten), so the
// final state is the one after the last real token.
at::Tensor into_chunks(const at::Tensor& t, int64_t chunk) {
  const auto pad = (chunk - t.size(2) % chunk) % chunk;
  auto padded = pad > 0 ? at::constant_pad_nd(t, {0, 0, 0, pad}) : t;
  return padded.reshape({t.size(0), t.size(1), padded.size(2) / chunk, chunk, t.size(3)});
}

// Rows of each chunk's pairwise products that are computed together (sub_chunk_pairs).
constexpr int64_t kSubChunk = 8;

// pairs[..., r, j] = sum_c x[r, c] k[j, c] exp(G[r, c] - G[j, c]) for j < r (j <= r with
// `diagonal`), zero above; x, k, G [..., C, Dk] with G the cumulative log decay through each step.
// The decay differs per channel, so it cannot be applied to x . k afterwards: it rides on the
// operands. Splitting exp(G_r - G_j) around one centre for the whole chunk (Megatron's
// torch_chunk_gdn2) overflows once a channel's decay over the chunk passes twice exp()'s range
// (~176 in float32, which strong gates reach), so rows go in blocks of kSubChunk: for r in a block
// starting at r0 and j < r0 the factors are exp(G_r - G_{r0-1}) and exp(G_{r0-1} - G_j), both at
// most 1 (G never increases); within the block the pairs are summed elementwise, the exponent
// clamped at 0 where j > r (masked anyway, but an inf there would poison the gradients).
at::Tensor sub_chunk_pairs(const at::Tensor& x, const at::Tensor& k, const at::Tensor& G, bool diagonal) {
  const auto chunk = k.size(-2);
  std::vector<at::Tensor> row_blocks;
  for (int64_t r0 = 0; r0 < chunk; r0 += kSubChunk) {
    const auto rows = std::min(kSubChunk, chunk - r0);
    auto G_rows = G.narrow(-2, r0, rows);
    std::vector<at::Tensor> columns;
    if (r0 > 0) {  // the earlier blocks, through the decay at the end of the previous one
      auto boundary = G.narrow(-2, r0 - 1, 1);
      auto left = x.narrow(-2, r0, rows) * at::exp(G_rows - boundary);
      auto right = k.narrow(-2, 0, r0) * at::exp(boundary - G.narrow(-2, 0, r0));
      columns.push_back(at::matmul(left, right.transpose(-1, -2)));
    }
    // Within the block: [.., rows (r), rows (j), Dk], summed over the channels.
    auto log_decay = (G_rows.unsqueeze(-2) - G_rows.unsqueeze(-3)).clamp_max(0);
    auto within = (x.narrow(-2, r0, rows).unsqueeze(-2) * k.narrow(-2, r0, rows).unsqueeze(-3) * at::exp(log_decay))
                      .sum(-1);
    columns.push_back(within.tril(diagonal ? 0 : -1));
    if (r0 + rows < chunk) {
      auto shape = within.sizes().vec();
      shape.back() = chunk - r0 - rows;
      columns.push_back(at::zeros(shape, within.options()));
    }
    row_blocks.push_back(at::cat(columns, -1));
  }
  return at::cat(row_blocks, -2);
}

// The chunked form on the rows of a batch (no packed documents).
//
// Within a chunk entering with state S0, write G_r for the cumulative log decay through step r
// (per key channel) and u_r for the row step r adds along k_r. Unrolling the definition,
//   S_r = Diag(e^G_r) S0 + sum_{j<=r} Diag(e^(G_r - G_j)) k_j u_j^T,
//   u_r = w_r * v_r - (b_r * k_r * e^G_r)^T S0 - sum_{j<r} ((b_r * k_r) . (e^(G_r - G_j) * k_j)) u_j,
//   o_r = (q_r * e^G_r)^T S0 + sum_{j<=r} (q_r . (e^(G_r - G_j) * k_j)) u_j.
// So u = U - W S0 with U = L^-1 (w * v), W = L^-1 (b * k * e^G) and L unit lower triangular
// (the UT transform), all computed for every chunk at once; only the hand-off of S between chunks
// is sequential. Every exponent is at most 0 (sub_chunk_pairs for the pairwise decays), so
// nothing overflows however strong the decay.
DeltaRuleOutput chunked_rows(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                             const at::Tensor& b, const at::Tensor& w, int64_t chunk,
                             const std::optional<at::Tensor>& initial_state, const DeltaRuleDims& d) {
  const auto dtype = compute_dtype(q, k, v);
  // The products feed the state every later chunk reads: keep them in the compute dtype.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const auto chunked = [&](const at::Tensor& t) { return into_chunks(heads_first(t, dtype), chunk); };
  // Shapes: [B, H, N chunks, C steps, D].
  auto qc = chunked(q), kc = chunked(k), vc = chunked(v), gc = chunked(g), bc = chunked(b), wc = chunked(w);

  auto G = gc.cumsum(-2);                     // through step r, from the chunk start
  auto G_total = G.narrow(-2, chunk - 1, 1);  // [B, H, N, 1, Dk]
  auto erase_key = bc * kc;

  auto coupling = sub_chunk_pairs(erase_key, kc, G, /*diagonal=*/false);
  // unitriangular: L's diagonal is one and never read; only its strictly lower part is.
  auto solve = [&](const at::Tensor& rhs) {
    return at::linalg_solve_triangular(coupling, rhs, /*upper=*/false, /*left=*/true, /*unitriangular=*/true);
  };
  auto U = solve(wc * vc);
  auto W = solve(erase_key * at::exp(G));

  auto scores = sub_chunk_pairs(qc, kc, G, /*diagonal=*/true);
  auto q_from_start = qc * at::exp(G);
  auto key_to_end = kc * at::exp(G_total - G);           // e^(G_C - G_j) <= 1
  auto decay_whole = at::exp(G_total).transpose(-1, -2);  // [B, H, N, Dk, 1]

  auto state = start_state(initial_state, d.batch, d, qc);
  std::vector<at::Tensor> outs;
  const auto chunks = qc.size(2);
  outs.reserve(chunks);
  for (int64_t n = 0; n < chunks; ++n) {
    auto at_chunk = [n](const at::Tensor& t) { return t.select(2, n); };
    auto u = at_chunk(U) - at::matmul(at_chunk(W), state);
    outs.push_back(at::matmul(at_chunk(q_from_start), state) + at::matmul(at_chunk(scores), u));
    state = at_chunk(decay_whole) * state + at::matmul(at_chunk(key_to_end).transpose(-1, -2), u);
  }
  auto out = at::stack(outs, 2).flatten(2, 3).narrow(2, 0, d.seq);  // [B, H, T, Dv]
  return {out.transpose(1, 2).to(v.scalar_type()), state};
}

// The definition, token by token, for the rows of a batch.
DeltaRuleOutput recurrent_rows(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                               const at::Tensor& b, const at::Tensor& w, const std::optional<at::Tensor>& initial_state,
                               const DeltaRuleDims& d) {
  const auto dtype = compute_dtype(q, k, v);
  auto qh = heads_first(q, dtype), kh = heads_first(k, dtype), vh = heads_first(v, dtype);  // [B, H, T, D]
  auto decay = at::exp(heads_first(g, dtype)), bh = heads_first(b, dtype), wh = heads_first(w, dtype);
  auto state = start_state(initial_state, d.batch, d, vh);  // [B, H, Dk, Dv]
  std::vector<at::Tensor> outs;
  outs.reserve(d.seq);
  for (int64_t t = 0; t < d.seq; ++t) {
    auto step = [t](const at::Tensor& x) { return x.select(2, t); };  // [B, H, D]
    auto k_t = step(kh);
    state = state * step(decay).unsqueeze(-1);
    auto erased = at::matmul((step(bh) * k_t).unsqueeze(-2), state).squeeze(-2);  // (b * k)^T S
    state = state + k_t.unsqueeze(-1) * (step(wh) * step(vh) - erased).unsqueeze(-2);
    outs.push_back(at::matmul(step(qh).unsqueeze(-2), state).squeeze(-2));
  }
  return {at::stack(outs, 1).to(v.scalar_type()), state};  // out [B, T, H, Dv]
}

using RowsForm = std::function<DeltaRuleOutput(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                               const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                               const std::optional<at::Tensor>&, const DeltaRuleDims&)>;

// Either form over a batch, or over packed documents one document at a time (each from its own
// state, so each is padded to whole chunks on its own and no chunk holds two documents).
DeltaRuleOutput run_form(const char* fn, const RowsForm& form, const at::Tensor& q, const at::Tensor& k,
                         const at::Tensor& v, const at::Tensor& g, const at::Tensor& b, const at::Tensor& w,
                         const std::optional<at::Tensor>& initial_state, const std::optional<at::Tensor>& cu_seqlens) {
  const auto d = check_inputs(fn, q, k, v, g, b, w);
  return over_rows_or_documents(fn, d, initial_state, cu_seqlens, [&](const auto& part, const auto& start,
                                                                      const DeltaRuleDims& dims) {
    return form(part(q), part(k), part(v), part(g), part(b), part(w), start, dims);
  });
}

}  // namespace

DeltaRuleOutput gated_delta_rule2_chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const at::Tensor& g, const at::Tensor& b, const at::Tensor& w,
                                          int64_t chunk_size, const std::optional<at::Tensor>& initial_state,
                                          const std::optional<at::Tensor>& cu_seqlens) {
  const auto fn = "gated_delta_rule2_chunked";
  if (chunk_size < 1) fail(fn, ": chunk_size must be positive, got ", chunk_size);
  auto form = [chunk_size](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                           const at::Tensor& b, const at::Tensor& w, const std::optional<at::Tensor>& initial,
                           const DeltaRuleDims& d) { return chunked_rows(q, k, v, g, b, w, chunk_size, initial, d); };
  return run_form(fn, form, q, k, v, g, b, w, initial_state, cu_seqlens);
}

DeltaRuleOutput gated_delta_rule2_recurrent(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& g, const at::Tensor& b, const at::Tensor& w,
                                            const std::optional<at::Tensor>& initial_state,
                                            const std::optional<at::Tensor>& cu_seqlens) {
  return run_form("gated_delta_rule2_recurrent", recurrent_rows, q, k, v, g, b, w, initial_state, cu_seqlens);
}

}  // namespace strata
