#include "gated_delta_chunk_arguments.h"

#include "strata/core/error.h"

namespace strata::kernels {

namespace {

bool kernel_dtype(at::ScalarType type) { return type == at::kFloat || type == at::kBFloat16 || type == at::kHalf; }

bool reduced(at::ScalarType type) { return type == at::kBFloat16 || type == at::kHalf; }

// Packed documents in chunks: each chunk's (first token, length) and each document's first chunk,
// int32 on `device`. A document of n tokens takes ceil(n / 64) chunks of its own.
struct DocumentChunkTables {
  at::Tensor chunk_tokens, segment_chunks;
  int64_t chunks, segments;
};

DocumentChunkTables document_chunk_tables(const std::vector<int64_t>& bounds, at::Device device) {
  std::vector<int32_t> tokens, segment_chunks{0};
  for (size_t d = 0; d + 1 < bounds.size(); ++d) {
    for (int64_t t = bounds[d]; t < bounds[d + 1]; t += launch::kGatedDeltaChunk) {
      tokens.push_back(static_cast<int32_t>(t));
      tokens.push_back(static_cast<int32_t>(std::min(launch::kGatedDeltaChunk, bounds[d + 1] - t)));
    }
    segment_chunks.push_back(static_cast<int32_t>(tokens.size() / 2));
  }
  const auto on_device = [&](const std::vector<int32_t>& x) { return at::tensor(x, at::kInt).to(device); };
  return {on_device(tokens), on_device(segment_chunks), segment_chunks.back(),
          static_cast<int64_t>(segment_chunks.size()) - 1};
}

}  // namespace

bool gated_delta_chunk_kernels_take(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                    const at::Tensor& beta, int64_t chunk_size,
                                    const std::optional<at::Tensor>& initial_state) {
  if (!use_cuda_kernels(v) || !reduced(v.scalar_type()) || chunk_size != launch::kGatedDeltaChunk) return false;
  if (q.dim() != 4 || v.dim() != 4 || !launch::gated_delta_chunk_fits(q.size(3), v.size(3))) return false;
  if (k.sizes() != q.sizes() || q.size(0) != v.size(0) || q.size(1) != v.size(1) || q.size(2) < 1 ||
      v.size(2) % q.size(2) != 0)
    return false;
  if (q.scalar_type() != k.scalar_type() || !kernel_dtype(q.scalar_type())) return false;
  for (const auto* t : {&q, &k, &g, &beta})
    if (t->device() != v.device()) return false;
  if (!g.is_floating_point() || !beta.is_floating_point()) return false;
  if (initial_state && (initial_state->device() != v.device() || !initial_state->is_floating_point())) return false;
  return true;
}

at::Tensor readable(const at::Tensor& t) {
  const auto size = static_cast<int64_t>(t.element_size());
  const auto rows_aligned = [&](const at::Tensor& x) {
    const auto s = row_strides(x);
    return (x.stride(-1) == 1 || x.size(-1) == 1) && reinterpret_cast<std::uintptr_t>(x.data_ptr()) % 16 == 0 &&
           (s.batch * size) % 16 == 0 && (s.seq * size) % 16 == 0 && (s.head * size) % 16 == 0;
  };
  if (rows_aligned(t)) return t;
  auto copy = t.contiguous();  // may be t itself, at an unaligned offset
  return rows_aligned(copy) ? copy : copy.clone();
}

GatedDeltaChunkArguments gated_delta_chunk_arguments(const char* fn, const at::Tensor& q, const at::Tensor& k,
                                                     const at::Tensor& v, const at::Tensor& g, const at::Tensor& beta,
                                                     const std::optional<at::Tensor>& initial_state,
                                                     const std::vector<int64_t>& document_bounds) {
  const int64_t batch = v.size(0), seq = v.size(1), heads = v.size(2), key_dim = q.size(3), value_dim = v.size(3);
  const bool packed = !document_bounds.empty();
  if (packed && (batch != 1 || document_bounds.front() != 0 || document_bounds.back() != seq))
    fail(fn, ": packed documents need B = 1 and bounds from 0 to T = ", seq, ", got B = ", batch, " and bounds ",
         at::IntArrayRef(document_bounds));
  std::optional<DocumentChunkTables> documents;
  if (packed) documents = document_chunk_tables(document_bounds, v.device());
  const int64_t chunks = packed ? documents->chunks : (seq + launch::kGatedDeltaChunk - 1) / launch::kGatedDeltaChunk;
  const int64_t segments = packed ? documents->segments : batch;
  if (initial_state && initial_state->sizes() != at::IntArrayRef{segments, heads, key_dim, value_dim})
    fail(fn, ": initial_state must be [", segments, ", ", heads, ", ", key_dim, ", ", value_dim, "], got ",
         initial_state->sizes());

  auto qr = readable(q), kr = readable(k), vr = readable(v);
  // g and beta are read in their own dtypes where the kernels take them (no conversion kernel).
  const auto as_read = [](const at::Tensor& t) {
    return (kernel_dtype(t.scalar_type()) ? t : t.to(at::kFloat)).contiguous();
  };
  auto gr = as_read(g), br = as_read(beta);
  auto initial = initial_state ? initial_state->to(at::kFloat).contiguous() : at::Tensor();
  GatedDeltaChunkArguments result{{.qk_dtype = launch_dtype(q.scalar_type(), "gated_delta_chunk: q"),
                                   .v_dtype = launch_dtype(v.scalar_type(), "gated_delta_chunk: v"),
                                   .q = qr.data_ptr(),
                                   .q_strides = row_strides(qr),
                                   .k = kr.data_ptr(),
                                   .k_strides = row_strides(kr),
                                   .v = vr.data_ptr(),
                                   .v_strides = row_strides(vr),
                                   .g = gr.data_ptr(),
                                   .g_dtype = launch_dtype(gr.scalar_type(), "gated_delta_chunk: g"),
                                   .beta = br.data_ptr(),
                                   .beta_dtype = launch_dtype(br.scalar_type(), "gated_delta_chunk: beta"),
                                   .initial_state = initial.defined() ? initial.data_ptr<float>() : nullptr,
                                   .chunk_tokens = packed ? documents->chunk_tokens.data_ptr<int32_t>() : nullptr,
                                   .segment_chunks = packed ? documents->segment_chunks.data_ptr<int32_t>() : nullptr,
                                   .out = nullptr,
                                   .final_state = nullptr,
                                   .workspace = nullptr,
                                   .batch = batch,
                                   .seq = seq,
                                   .heads = heads,
                                   .key_heads = q.size(2),
                                   .key_dim = key_dim,
                                   .value_dim = value_dim,
                                   .chunks = chunks,
                                   .segments = segments},
                                  {qr, kr, vr, gr, br, initial}};
  if (packed) result.held.insert(result.held.end(), {documents->chunk_tokens, documents->segment_chunks});
  return result;
}

}  // namespace strata::kernels
