// launch::gated_delta_chunk_forward: checks the problem, cuts the workspace into the arrays the
// three passes hand each other, and runs prepare, states and output on the stream.
//
// With args.parts > 1, prepare and the states pass run part by part, so that the next part's
// prepare runs beside this part's walk: the walk is a chain of dependent steps that leaves most of
// an SM idle, and its block (one an SM) leaves room for one of prepare's. Prepare runs on the
// caller's stream, the walk on a stream of the highest priority that waits for each part's prepare
// (so that the walk's blocks go first wherever both wait for an SM), and the output pass, on the
// caller's stream again, waits for the last part's walk.
#include <algorithm>
#include <array>
#include <vector>

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

constexpr int kMaxParts = 16;

// The walk's stream and the events that order it against the caller's, per host thread and
// device (made at first use; a stream of one thread is never used by another).
struct WalkStream {
  int device = -1;
  cudaStream_t stream = nullptr;
  std::array<cudaEvent_t, kMaxParts> prepared{};
  cudaEvent_t walked = nullptr;
};

WalkStream& walk_stream_of_current_device() {
  thread_local std::vector<WalkStream> streams;
  int device = 0;
  host::check(cudaGetDevice(&device), "gated_delta_chunk_forward: cudaGetDevice");
  for (auto& s : streams)
    if (s.device == device) return s;
  WalkStream& s = streams.emplace_back();
  s.device = device;
  int lowest = 0, highest = 0;
  host::check(cudaDeviceGetStreamPriorityRange(&lowest, &highest), "gated_delta_chunk_forward: stream priorities");
  host::check(cudaStreamCreateWithPriority(&s.stream, cudaStreamNonBlocking, highest),
              "gated_delta_chunk_forward: the walk's stream");
  for (auto& e : s.prepared)
    host::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "gated_delta_chunk_forward: an event");
  host::check(cudaEventCreateWithFlags(&s.walked, cudaEventDisableTiming), "gated_delta_chunk_forward: an event");
  return s;
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
  const int parts = static_cast<int>(args.parts);
  if (parts == 1) {
    gdn::launch_prepare(problem, cuda_stream);
    gdn::launch_states(problem, cuda_stream);
  } else {
    auto& walk = walk_stream_of_current_device();
    const auto part = [&](int i) {
      auto p = problem;
      p.part = {static_cast<int>(args.chunks * i / parts), static_cast<int>(args.chunks * (i + 1) / parts)};
      return p;
    };
    for (int i = 0; i < parts; ++i) {
      gdn::launch_prepare(part(i), cuda_stream);
      host::check(cudaEventRecord(walk.prepared[i], cuda_stream), "gated_delta_chunk_forward: cudaEventRecord");
    }
    for (int i = 0; i < parts; ++i) {
      host::check(cudaStreamWaitEvent(walk.stream, walk.prepared[i], 0),
                  "gated_delta_chunk_forward: cudaStreamWaitEvent");
      gdn::launch_states(part(i), walk.stream);
    }
    host::check(cudaEventRecord(walk.walked, walk.stream), "gated_delta_chunk_forward: cudaEventRecord");
    host::check(cudaStreamWaitEvent(cuda_stream, walk.walked, 0), "gated_delta_chunk_forward: cudaStreamWaitEvent");
  }
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
  if (args.parts < 1 || args.parts > std::min<int64_t>(args.chunks, kMaxParts))
    fail(fn, ": parts is ", args.parts, "; expected 1 .. min(chunks = ", args.chunks, ", ", kMaxParts, ")");
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
                      reinterpret_cast<gdn::bf16*>(base + layout.inverse),
                      {0, static_cast<int>(args.chunks)}};
}

}  // namespace strata::kernels
