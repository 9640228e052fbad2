// launch::gated_delta_chunk_backward: checks the problem, cuts the backward's workspace into its
// arrays, runs the forward's prepare and states passes again unless their arrays were kept, then
// the backward's local, states and gradients passes, in order on the stream.
#include "gated_delta_chunk_backward.cuh"

namespace strata::kernels {
namespace {

// The backward's own arrays, each starting 256-byte aligned (the forward's are in its workspace).
struct BackwardWorkspaceLayout {
  int64_t queries, d_out, d_delta, d_states, final_state, bytes;
};

BackwardWorkspaceLayout backward_workspace_layout(int64_t batch, int64_t heads, int64_t chunks, int64_t segments,
                                                  int64_t key_dim, int64_t value_dim) {
  const auto aligned = [](int64_t bytes) { return (bytes + 255) / 256 * 256; };
  const int64_t chunk_count = batch * heads * chunks, steps = chunk_count * gdn::kChunk;
  BackwardWorkspaceLayout l{};
  l.queries = 0;
  l.d_out = l.queries + aligned(steps * key_dim * 2);
  l.d_delta = l.d_out + aligned(steps * value_dim * 2);
  l.d_states = l.d_delta + aligned(steps * value_dim * 2);
  l.final_state = l.d_states + aligned(chunk_count * key_dim * value_dim * 2);
  l.bytes = l.final_state + aligned(segments * heads * key_dim * value_dim * 4);
  return l;
}

}  // namespace

namespace launch {

int64_t gated_delta_chunk_backward_workspace_bytes(int64_t batch, int64_t heads, int64_t chunks, int64_t segments,
                                                   int64_t key_dim, int64_t value_dim) {
  return backward_workspace_layout(batch, heads, chunks, segments, key_dim, value_dim).bytes;
}

void gated_delta_chunk_backward(const GatedDeltaChunkBackward& args, Stream stream) {
  const auto problem = gdn::backward_problem_of(args);
  const auto cuda_stream = host::as_cuda(stream);
  if (args.recompute) {
    gdn::launch_prepare(problem.forward, cuda_stream);
    gdn::launch_states(problem.forward, cuda_stream);
  }
  gdn::launch_backward_local(problem, cuda_stream);
  gdn::launch_backward_states(problem, cuda_stream);
  gdn::launch_backward_gradients(problem, cuda_stream);
}

}  // namespace launch

gdn::BackwardProblem gdn::backward_problem_of(const launch::GatedDeltaChunkBackward& args) {
  const auto fn = "gated_delta_chunk_backward";
  const auto& f = args.forward;
  if (!host::aligned(args.workspace, 256)) fail(fn, ": the backward's workspace must be 256-byte aligned");
  const auto layout = backward_workspace_layout(f.batch, f.heads, f.chunks, f.segments, f.key_dim, f.value_dim);
  auto* base = static_cast<unsigned char*>(args.workspace);
  auto forward_args = f;
  forward_args.out = nullptr;                                                      // the output pass is not run
  forward_args.keep_for_backward = true;                                           // the arrays read below
  forward_args.final_state = reinterpret_cast<float*>(base + layout.final_state);  // recomputed, not read
  const auto forward = problem_of(forward_args);  // checks sizes and the inputs' alignment
  const auto& s = args.d_out_strides;
  const int64_t size = f.v_dtype == launch::Dtype::Float32 ? 4 : 2;
  if (!host::aligned(args.d_out, 16) || (s.batch * size) % 16 != 0 || (s.seq * size) % 16 != 0 ||
      (s.head * size) % 16 != 0)
    fail(fn, ": d_out's rows must be 16-byte aligned (strides ", s.batch, ", ", s.seq, ", ", s.head, ")");
  if (args.dq == nullptr || args.dk == nullptr || args.dv == nullptr || args.dg == nullptr || args.dbeta == nullptr)
    fail(fn, ": dq, dk, dv, dg and dbeta are all written and must not be null");
  if (!host::aligned(args.dq, 16) || !host::aligned(args.dk, 16) || !host::aligned(args.dv, 16))
    fail(fn, ": dq, dk and dv must be 16-byte aligned");
  return BackwardProblem{forward,
                         args,
                         reinterpret_cast<bf16*>(base + layout.queries),
                         reinterpret_cast<bf16*>(base + layout.d_out),
                         reinterpret_cast<bf16*>(base + layout.d_delta),
                         reinterpret_cast<bf16*>(base + layout.d_states)};
}

}  // namespace strata::kernels
