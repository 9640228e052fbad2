#include "strata/layers/gated_delta_rule.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <limits>
#include <vector>

#include "delta_rule_inputs.h"
#include "strata/core/error.h"
#include "strata/kernels/gated_delta_chunk_forward.h"
#include "strata/kernels/gated_delta_chunk_training.h"
#include "strata/kernels/packed_documents.h"
#include "strata/kernels/unit_lower_inverse.h"
#include "strata/layers/delta_rule_chunk_states.h"
#include "strata/layers/tf32_matmul.h"

namespace strata {

namespace {

DeltaRuleDims check_inputs(const char* fn, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& g, const at::Tensor& beta) {
  const auto d = check_qkv(fn, q, k, v);
  const std::vector<int64_t> per_token{d.batch, d.seq, d.heads};
  if (g.sizes() != per_token)
    fail(fn, ": g must be [B, T, H] = ", at::IntArrayRef(per_token), ", got shape ", shape_of(g));
  if (beta.sizes() != per_token)
    fail(fn, ": beta must be [B, T, H] = ", at::IntArrayRef(per_token), ", got shape ", shape_of(beta));
  return d;
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

// Where packed documents go in the chunk layout: each document starts a chunk and is padded to
// whole chunks, document d taking chunks chunk_offsets[d] .. chunk_offsets[d + 1] - 1.
struct DocumentChunks {
  std::vector<int64_t> chunk_offsets;  // N + 1
  at::Tensor slot_of_token;            // int64 [T]: token t's place in the flattened [chunks * chunk] steps
  int64_t chunks;
};

DocumentChunks document_chunks(const std::vector<int64_t>& bounds, int64_t chunk, at::Device device) {
  DocumentChunks layout{{0}, at::Tensor(), 0};
  std::vector<int64_t> slots(bounds.back());
  for (size_t doc = 0; doc + 1 < bounds.size(); ++doc) {
    const auto first_slot = layout.chunk_offsets.back() * chunk;
    for (int64_t t = bounds[doc]; t < bounds[doc + 1]; ++t) slots[t] = first_slot + (t - bounds[doc]);
    layout.chunk_offsets.push_back(layout.chunk_offsets.back() + (bounds[doc + 1] - bounds[doc] + chunk - 1) / chunk);
  }
  layout.chunks = layout.chunk_offsets.back();
  layout.slot_of_token = at::tensor(slots, at::kLong).to(device);
  return layout;
}

// [1, H, T, ...] -> [1, H, chunks, chunk, ...] in the documents' chunk layout; the padding steps
// are zeros, which neither decay nor write the state (as into_chunks' are).
at::Tensor into_document_chunks(const at::Tensor& t, const DocumentChunks& layout, int64_t chunk) {
  auto shape = t.sizes().vec();
  shape[2] = layout.chunks * chunk;
  auto steps = at::zeros(shape, t.options()).index_copy(2, layout.slot_of_token, t);
  shape[2] = layout.chunks;
  shape.insert(shape.begin() + 3, chunk);
  return steps.view(shape);
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
                                         const std::optional<at::Tensor>& initial_state,
                                         const std::optional<at::Tensor>& cu_seqlens) {
  const auto fn = "gated_delta_rule_chunked";
  const auto d = check_inputs(fn, q, k, v, g, beta);
  if (chunk_size < 1) fail(fn, ": chunk_size must be positive, got ", chunk_size);
  std::vector<int64_t> bounds;  // packed documents' cu_seqlens on the host, empty for none
  if (cu_seqlens) bounds = kernels::document_bounds(fn, *cu_seqlens, d.batch, d.seq);
  const auto state_rows = cu_seqlens ? static_cast<int64_t>(bounds.size()) - 1 : d.batch;
  check_initial_state(fn, initial_state, d, state_rows, cu_seqlens.has_value());
  // Inference and prefill (no gradient to record) of bf16/fp16 values on the GPU: the fused
  // tensor-core forward (kernels/gated_delta_chunk_*.cu). Training on the same inputs runs the
  // fused forward and backward with STRATA_FUSED_GDN_BACKWARD=1; otherwise it keeps the
  // differentiable path below, this function's twin.
  if (kernels::gated_delta_chunk_forward_applies(q, k, v, g, beta, chunk_size, initial_state)) {
    auto fused = kernels::gated_delta_chunk_forward_cuda(q, k, v, g, beta, initial_state, bounds);
    return {fused.out, fused.final_state};
  }
  if (kernels::gated_delta_chunk_training_applies(q, k, v, g, beta, chunk_size, initial_state)) {
    auto fused = kernels::gated_delta_chunk_training(q, k, v, g, beta, initial_state, bounds);
    return {fused.out, fused.final_state};
  }
  std::optional<DocumentChunks> documents;
  if (cu_seqlens) documents = document_chunks(bounds, chunk_size, q.device());
  const auto dtype = compute_dtype(q, k, v);
  // Every product runs in the compute dtype whatever autocast says (U and W feed the state every
  // later chunk reads; autocast would also cast each float32 operand to bf16 first). Where out
  // is bf16 or fp16 anyway, the float32 products run on TF32 tensor cores.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const bool reduced_output = v.scalar_type() == at::kBFloat16 || v.scalar_type() == at::kHalf;
  const bool tf32 = reduced_output && dtype == at::kFloat;
  const auto product = [tf32](const at::Tensor& a, const at::Tensor& b) { return matmul_tf32_if(tf32, a, b); };
  // Shapes below: [B, H, N chunks, C steps, ...].
  // q and k's key heads are repeated to the value heads after heads_first lays them out.
  const auto chunked = [&](const at::Tensor& t) {
    auto wide = per_value_head(heads_first(t, dtype), d.heads, 1);
    return documents ? into_document_chunks(wide, *documents, chunk_size) : into_chunks(wide, chunk_size);
  };
  auto qc = chunked(q);
  auto kc = chunked(k);
  auto vc = chunked(v);
  auto gc = chunked(g);  // [B, H, N, C]
  auto bc = chunked(beta).unsqueeze(-1);

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

  // The one sequential part: the state entering each chunk, and each chunk's corrections. Packed
  // documents are segments of the scan, each starting from its own state ([N, B = 1, H, ...]).
  auto initial = start_state(initial_state, state_rows, d, qc);
  auto states = documents ? delta_rule_chunk_states(U, W, k_to_end, decay_whole, initial.unsqueeze(1), tf32,
                                                    documents->chunk_offsets)
                          : delta_rule_chunk_states(U, W, k_to_end, decay_whole, initial, tf32);
  auto out = product(q_from_start, states.entering) + product(scores, states.delta);
  out = out.flatten(2, 3);
  out = documents ? out.index_select(2, documents->slot_of_token) : out.narrow(2, 0, d.seq);
  auto final_state = documents ? states.final_state.squeeze(1) : states.final_state;
  return {out.transpose(1, 2).to(v.scalar_type()), final_state};
}

namespace {

// The definition, token by token, for the rows of a batch.
DeltaRuleOutput recurrent_rows(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                               const at::Tensor& beta, const std::optional<at::Tensor>& initial_state,
                               const DeltaRuleDims& d) {
  const auto dtype = compute_dtype(q, k, v);
  auto qh = heads_first(q, dtype).unsqueeze(-2);  // [B, H, T, 1, Dk]: row vectors for matmul
  auto kh = heads_first(k, dtype).unsqueeze(-2);
  auto vh = heads_first(v, dtype);
  auto decay = at::exp(heads_first(g, dtype)).unsqueeze(-1).unsqueeze(-1);  // [B, H, T, 1, 1]
  auto bh = heads_first(beta, dtype).unsqueeze(-1);                         // [B, H, T, 1]

  auto state = start_state(initial_state, d.batch, d, vh);
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

}  // namespace

DeltaRuleOutput gated_delta_rule_recurrent(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& g, const at::Tensor& beta,
                                           const std::optional<at::Tensor>& initial_state,
                                           const std::optional<at::Tensor>& cu_seqlens) {
  const auto fn = "gated_delta_rule_recurrent";
  const auto d = check_inputs(fn, q, k, v, g, beta);
  const auto qv = per_value_head(q, d.heads, 2), kv = per_value_head(k, d.heads, 2);
  // Packed documents each on their own, from their own state.
  return over_rows_or_documents(fn, d, initial_state, cu_seqlens, [&](const auto& part, const auto& start,
                                                                      const DeltaRuleDims& dims) {
    return recurrent_rows(part(qv), part(kv), part(v), part(g), part(beta), start, dims);
  });
}

}  // namespace strata
