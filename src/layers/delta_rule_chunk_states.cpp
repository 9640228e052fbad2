#include "strata/layers/delta_rule_chunk_states.h"

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "strata/core/error.h"
#include "strata/layers/tf32_matmul.h"

namespace strata {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Segment offsets run from 0 to the chunk count without decreasing, one segment per x0[s] (the
// scan's x0, which `x0_name` names).
void check_chunk_offsets(const std::vector<int64_t>& offsets, int64_t chunks, const at::Tensor& x0, const char* fn,
                         const char* x0_name) {
  const auto segments = static_cast<int64_t>(offsets.size()) - 1;
  if (segments < 1 || offsets.front() != 0 || offsets.back() != chunks)
    fail(fn, ": chunk_offsets must run from 0 to the chunk count ", chunks, ", got ", at::IntArrayRef(offsets));
  for (int64_t s = 0; s < segments; ++s)
    if (offsets[s + 1] < offsets[s])
      fail(fn, ": chunk_offsets must not decrease, got ", offsets[s], " then ", offsets[s + 1], " at segment ", s);
  if (x0.dim() < 3 || x0.size(0) != segments)
    fail(fn, ": with ", segments, " segments ", x0_name, " must be [", segments, ", ..., Dk, Dv], got shape ",
         x0.sizes());
}

kernels::ChunkScanResult chunk_state_scan(const kernels::ChunkScanInputs& in) {
  if (kernels::chunk_state_scan_kernel_applies(in)) return kernels::chunk_state_scan_cuda(in);
  // The twin computes in its inputs' dtype, as the kernel does, whatever autocast says.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return chunk_state_scan_reference(in);
}

// The scan's segments as a CPU tensor, undefined for none.
at::Tensor offsets_tensor(const std::vector<int64_t>& chunk_offsets) {
  return chunk_offsets.empty() ? at::Tensor() : at::tensor(chunk_offsets, at::kLong);
}

// The forward scan carries S from the first chunk; the backward carries dL/dS from the last:
//   dL/dS_{n+1} is the carried value as chunk n is visited (saved: it gives K_n's and decay_n's
//   gradients), ddelta_n = g_delta_n + K_n dL/dS_{n+1} is the y of the scan, and
//   dL/dS_n = decay_n dL/dS_{n+1} - W_n^T ddelta_n + g_entering_n.
class ChunkStatesFunction : public torch::autograd::Function<ChunkStatesFunction> {
 public:
  // chunk_offsets: the segments' offsets, empty for none.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& U, const at::Tensor& W,
                               const at::Tensor& k_to_end, const at::Tensor& chunk_decay, const at::Tensor& initial,
                               bool tf32_products, const std::vector<int64_t>& chunk_offsets) {
    auto scan = chunk_state_scan({.x0 = initial, .y_init = U, .a = W, .b = k_to_end, .decay = chunk_decay,
                                  .y_sign = -1.0, .x_sign = 1.0, .chunk_offsets = offsets_tensor(chunk_offsets)});
    ctx->save_for_backward({W, k_to_end, chunk_decay, scan.states, scan.y});
    ctx->saved_data["tf32_products"] = tf32_products;
    ctx->saved_data["chunk_offsets"] = chunk_offsets;
    return {scan.states, scan.y, scan.x_final};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const auto saved = ctx->get_saved_variables();
    const auto &W = saved[0], &k_to_end = saved[1], &chunk_decay = saved[2], &entering = saved[3], &delta = saved[4];
    // Undefined output gradients arrive as zeros (the Function materialises them).
    const auto& g_entering = grads[0];
    const auto& g_delta = grads[1];
    const auto& g_final = grads[2];
    auto scan = chunk_state_scan({.x0 = g_final.to(W.scalar_type()),
                                  .y_init = g_delta.to(W.scalar_type()),
                                  .a = k_to_end,
                                  .b = W,
                                  .decay = chunk_decay,
                                  .x_add = g_entering.to(W.scalar_type()),
                                  .y_sign = 1.0,
                                  .x_sign = -1.0,
                                  .reverse = true,
                                  .chunk_offsets = offsets_tensor(ctx->saved_data["chunk_offsets"].toIntVector())});
    const auto& g_leaving = scan.states;  // dL/dS_{n+1}
    const auto& g_corrections = scan.y;
    const bool tf32 = ctx->saved_data["tf32_products"].toBool();
    auto grad_W = -matmul_tf32_if(tf32, g_corrections, entering.transpose(-1, -2));
    auto grad_k_to_end = matmul_tf32_if(tf32, delta, g_leaving.transpose(-1, -2));
    auto grad_decay = (entering * g_leaving).sum({-2, -1});
    return {g_corrections, grad_W, grad_k_to_end, grad_decay, scan.x_final, at::Tensor(), at::Tensor()};
  }
};

void check_shapes(const at::Tensor& U, const at::Tensor& W, const at::Tensor& k_to_end, const at::Tensor& chunk_decay,
                  const at::Tensor& initial, const std::vector<int64_t>& chunk_offsets) {
  const auto fn = "delta_rule_chunk_states";
  if (W.dim() != 5) fail(fn, ": W must be [B, H, N, C, Dk], got shape ", W.sizes());
  const auto B = W.size(0), H = W.size(1), N = W.size(2), C = W.size(3), Dk = W.size(4);
  if (chunk_offsets.empty()) {
    if (initial.dim() != 4 || initial.size(0) != B || initial.size(1) != H || initial.size(2) != Dk)
      fail(fn, ": initial must be [B, H, Dk, Dv] with [B, H, Dk] = [", B, ", ", H, ", ", Dk, "], got shape ",
           initial.sizes());
  } else {
    check_chunk_offsets(chunk_offsets, N, initial, fn, "initial");
    if (initial.dim() != 5 || initial.size(1) != B || initial.size(2) != H || initial.size(3) != Dk)
      fail(fn, ": with segments initial must be [S, B, H, Dk, Dv] with [B, H, Dk] = [", B, ", ", H, ", ", Dk,
           "], got shape ", initial.sizes());
  }
  const auto Dv = initial.size(-1);
  if (U.sizes() != at::IntArrayRef{B, H, N, C, Dv})
    fail(fn, ": U must be [B, H, N, C, Dv] = [", B, ", ", H, ", ", N, ", ", C, ", ", Dv, "], got shape ", U.sizes());
  if (k_to_end.sizes() != W.sizes()) fail(fn, ": k_to_end must have W's shape ", W.sizes(), ", got ", k_to_end.sizes());
  if (chunk_decay.sizes() != at::IntArrayRef{B, H, N})
    fail(fn, ": chunk_decay must be [B, H, N] = [", B, ", ", H, ", ", N, "], got shape ", chunk_decay.sizes());
  for (const auto* t : {&U, &k_to_end, &chunk_decay, &initial})
    if (t->scalar_type() != W.scalar_type())
      fail(fn, ": every input must have W's dtype ", W.scalar_type(), ", got ", t->scalar_type());
}

}  // namespace

kernels::ChunkScanResult chunk_state_scan_reference(const kernels::ChunkScanInputs& in) {
  const auto chunks = in.a.size(-3);
  // Each segment's chunk range; without segments one range per leading index, run all at once.
  std::vector<int64_t> offsets{0, chunks};
  if (in.chunk_offsets.defined()) {
    auto host = in.chunk_offsets.to(at::kCPU, at::kLong).contiguous();
    offsets.assign(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
    check_chunk_offsets(offsets, chunks, in.x0, "chunk_state_scan_reference", "x0");
  }
  const auto segments = static_cast<int64_t>(offsets.size()) - 1;
  std::vector<at::Tensor> states(chunks), ys(chunks), finals;
  for (int64_t s = 0; s < segments; ++s) {
    auto x = in.chunk_offsets.defined() ? in.x0.select(0, s) : in.x0;
    const auto first = offsets[s], count = offsets[s + 1] - offsets[s];
    for (int64_t step = 0; step < count; ++step) {
      const auto n = in.reverse ? first + count - 1 - step : first + step;
      states[n] = x;
      ys[n] = in.y_init.select(-3, n) + in.y_sign * at::matmul(in.a.select(-3, n), x);
      x = in.decay.select(-1, n).unsqueeze(-1).unsqueeze(-1) * x +
          in.x_sign * at::matmul(in.b.select(-3, n).transpose(-1, -2), ys[n]);
      if (in.x_add.defined()) x = x + in.x_add.select(-3, n);
    }
    finals.push_back(x);
  }
  auto x_final = in.chunk_offsets.defined() ? at::stack(finals, 0) : finals.front();
  return {at::stack(states, -3), at::stack(ys, -3), x_final};
}

DeltaRuleChunkStates delta_rule_chunk_states(const at::Tensor& U, const at::Tensor& W, const at::Tensor& k_to_end,
                                             const at::Tensor& chunk_decay, const at::Tensor& initial,
                                             bool tf32_products, const std::vector<int64_t>& chunk_offsets) {
  check_shapes(U, W, k_to_end, chunk_decay, initial, chunk_offsets);
  if (tf32_products && W.scalar_type() != at::kFloat)
    fail("delta_rule_chunk_states: tf32_products needs float32 inputs, got ", W.scalar_type());
  auto out = ChunkStatesFunction::apply(U, W, k_to_end, chunk_decay, initial, tf32_products, chunk_offsets);
  return {out[0], out[1], out[2]};
}

}  // namespace strata
