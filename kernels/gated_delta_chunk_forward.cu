// launch::gated_delta_chunk_forward: checks the problem, cuts the workspace into the arrays the
// three passes hand each other, and runs prepare, states and output in order on the stream.
#include "gated_delta_chunk.cuh"

namespace strata::kernels {
namespace {

// The workspace arrays in order, each starting 256-byte aligned.
struct WorkspaceLayout {
  int64_t gates, w, u, states, inverse, bytes;
};

WorkspaceLayout workspace_layout(int64_t batch, int64_t heads, int64_t chunks, int64_t key_dim, int64_t value_dim) {
  const auto aligned = [](int64_t bytes) { return (bytes + 255) / 256 * 256; };
  const int64_t chunk_count = batch * heads * chunks, steps = chunk_count * gdn::kChunk;
  WorkspaceLayout l{};
  l.gates = 0;
  l.w = l.gates + aligned(steps * 4);
  l.u = l.w + aligned(steps * key_dim * 2);
  l.states = l.u + aligned(steps * value_dim * 2);
  l.inverse = l.states + aligned(chunk_count * key_dim * value_dim * 2);
  l.bytes = l.inverse + aligned(chunk_count * gdn::kChunk * gdn::kChunk * 2);
  return l;
}

bool rows_aligned(const void* p, const launch::RowStrides& s, launch::Dtype dtype) {
  const int64_t size = dtype == launch::Dtype::Float32 ? 4 : 2;
  return host::aligned(p, 16) && (s.batch * size) % 16 == 0 && (s.seq * size) % 16 == 0 && (s.head * size) % 16 == 0;
}

}  // namespace

namespace launch {

int64_t gated_delta_chunk_workspace_bytes(int64_t batch, int64_t heads, int64_t chunks, int64_t key_dim,
                                          int64_t value_dim) {
  return workspace_layout(batch, heads, chunks, key_dim, value_dim).bytes;
}

void gated_delta_chunk_forward(const GatedDeltaChunkForward& args, Stream stream) {
  const auto problem = gdn::problem_of(args);
  const auto cuda_stream = host::as_cuda(stream);
  gdn::launch_prepare(problem, cuda_stream);
  gdn::launch_states(problem, cuda_stream);
  gdn::launch_output(problem, cuda_stream);
}

}  // namespace launch

gdn::Problem gdn::problem_of(const launch::GatedDeltaChunkForward& args) {
  const auto fn = "gated_delta_chunk_forward";
  if (!launch::gated_delta_chunk_fits(args.key_dim, args.value_dim))
    fail(fn, ": key_dim ", args.key_dim, " and value_dim ", args.value_dim, "; the kernels are built for 128 and 128");
  if (args.batch < 1 || args.seq < 1 || args.heads < 1 || args.chunks < 1 || args.segments < 1)
    fail(fn, ": batch ", args.batch, ", seq ", args.seq, ", heads ", args.heads, ", chunks ", args.chunks,
         ", segments ", args.segments, "; expected all positive");
  if (args.key_heads < 1 || args.heads % args.key_heads != 0)
    fail(fn, ": ", args.heads, " value heads and ", args.key_heads, " key heads; expected a positive number of key ",
         "heads that divides the value heads");
  const bool packed = args.chunk_tokens != nullptr;
  if (packed != (args.segment_chunks != nullptr))
    fail(fn, ": chunk_tokens and segment_chunks come together (packed documents) or not at all");
  if (packed ? args.batch != 1
             : (args.segments != args.batch || args.chunks != (args.seq + gdn::kChunk - 1) / gdn::kChunk))
    fail(fn, ": batch ", args.batch, ", seq ", args.seq, ", chunks ", args.chunks, ", segments ", args.segments,
         packed ? "; packed documents take batch 1" : "; expected chunks = ceil(seq / 64) and segments = batch");
  if (args.chunks > 65535 || args.segments > 65535 || args.heads * args.batch > 65535 ||
      args.seq * args.heads * args.batch > (int64_t{1} << 31))
    fail(fn, ": ", args.chunks, " chunks, ", args.segments, " segments, ", args.batch, " x ", args.heads,
         " (row, head) pairs, ", args.seq, " tokens; expected at most 65535 chunks, segments and pairs and 2^31 (row, ",
         "token, head) triples");
  if (!rows_aligned(args.q, args.q_strides, args.qk_dtype) || !rows_aligned(args.k, args.k_strides, args.qk_dtype) ||
      !rows_aligned(args.v, args.v_strides, args.v_dtype) || !host::aligned(args.workspace, 256) ||
      !host::aligned(args.out, 16))
    fail(fn, ": q, k and v rows, out and the workspace must be 16-byte aligned (the workspace 256-byte)");

  const auto layout = workspace_layout(args.batch, args.heads, args.chunks, args.key_dim, args.value_dim);
  auto* base = static_cast<unsigned char*>(args.workspace);
  return gdn::Problem{args,
                      reinterpret_cast<float*>(base + layout.gates),
                      reinterpret_cast<gdn::bf16*>(base + layout.w),
                      reinterpret_cast<gdn::bf16*>(base + layout.u),
                      reinterpret_cast<gdn::bf16*>(base + layout.states),
                      reinterpret_cast<gdn::bf16*>(base + layout.inverse)};
}

}  // namespace strata::kernels
