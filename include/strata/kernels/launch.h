#pragma once
// The raw CUDA launchers behind the fused ops, on plain pointers so that kernels/*.cu include no
// LibTorch header (nvcc compiles them in seconds). Every pointer is device memory, every array
// is contiguous unless a stride says otherwise, and every launch is asynchronous on `stream`
// (a cudaStream_t). They are defined in kernels/*.cu in a -DSTRATA_CUDA=ON build; in a CPU-only
// build each one throws. The ATen-facing wrappers (allocation, dtype checks, autograd) are in
// src/kernels/*.cpp.
#include <cstdint>

namespace strata::kernels::launch {

enum class Dtype { Float32, BFloat16, Float16 };

using Stream = void*;

// RMSNorm over rows of `cols`: rstd = rsqrt(mean(x^2) + eps) (float32, one per row) and
// y = y_dtype(float(x_dtype(x * rstd)) * w), the rounding the ATen twin does. y_dtype is x_dtype
// or Float32 (a float32 weight promotes the output).
void rms_norm_forward(Dtype x_dtype, Dtype y_dtype, const void* x, const float* w, void* y, float* rstd,
                      int64_t rows, int64_t cols, float eps, Stream stream);

// dx = rstd * (g*w - x * rstd^2 * mean(g*w*x)) in x_dtype, with g = grad_y (in y_dtype), and the
// weight gradient as float32 partial sums dw_partial [chunks, cols] over row chunks (sum them
// over dim 0). Deterministic: every sum has a fixed order.
void rms_norm_backward(Dtype x_dtype, Dtype y_dtype, const void* grad_y, const void* x, const float* w,
                       const float* rstd, void* dx, float* dw_partial, int64_t chunks, int64_t rows, int64_t cols,
                       Stream stream);

// Rotary embedding in the rotate-half layout on x [B, T, H, D] (strides in elements; the last
// dimension contiguous) with float32 tables cos, sin [T, R] (R <= D, even), which are first
// rounded to the dtype (as the twin does). out is contiguous [B, T, H, D]; dims R.. are copied.
// With inverse = true this is the backward: x is the output gradient, out the input gradient.
void rotary(Dtype dtype, const void* x, int64_t stride_b, int64_t stride_t, int64_t stride_h, const float* cos,
            const float* sin, void* out, int64_t batch, int64_t seq, int64_t heads, int64_t dim, int64_t rotary_dim,
            bool inverse, Stream stream);

// SwiGLU on fc1's output rows [gate | up] of 2 * cols: out [rows, cols] = silu(gate) * up, with
// silu(gate) rounded to the dtype before the product (as the twin does).
void swiglu_forward(Dtype dtype, const void* gate_up, void* out, int64_t rows, int64_t cols, Stream stream);

// grad_gate_up [rows, 2 * cols] from grad_out [rows, cols].
void swiglu_backward(Dtype dtype, const void* grad_out, const void* gate_up, void* grad_gate_up, int64_t rows,
                     int64_t cols, Stream stream);

// Next-token cross-entropy over logits [batch, seq, vocab]: row (b, t) predicts labels[b, t + 1];
// the last position of each sequence and labels equal to ignore_index predict nothing (loss 0).
// Writes each row's float32 loss and logsumexp. A label outside [0, vocab) gives a NaN loss.
void cross_entropy_forward(Dtype dtype, const void* logits, const int64_t* labels, float* loss, float* logsumexp,
                           int64_t batch, int64_t seq, int64_t vocab, int64_t ignore_index, Stream stream);

// grad_logits [batch, seq, vocab] (logits' dtype) = (softmax - onehot) * grad_loss / count for
// rows that predict a label, zero elsewhere; grad_loss and count are one float32 each on the
// device (no host synchronisation).
void cross_entropy_backward(Dtype dtype, const void* logits, const int64_t* labels, const float* logsumexp,
                            const float* grad_loss, const float* count, void* grad_logits, int64_t batch, int64_t seq,
                            int64_t vocab, int64_t ignore_index, Stream stream);

// Most residual streams (n) and Sinkhorn matrix size the mHC kernels take; larger n runs the twins.
constexpr int64_t kMaxHyperStreams = 8;

// Sinkhorn-Knopp on `count` float32 n x n matrices (n <= kMaxHyperStreams), in
// strata::sinkhorn_knopp's order: row softmax + eps, then a column normalisation, then iters - 1
// (row, column) pairs, each x / (sum + eps). A warp lane per row, the matrix in registers.
void sinkhorn_forward(const float* logits, float* out, int64_t count, int64_t n, int64_t iters, float eps,
                      Stream stream);

// grad_logits from grad_out, rerunning the forward from logits; `scratch` holds
// sinkhorn_scratch_floats(count, n, iters) floats for checkpoints of the normalisations' inputs:
// none while they fit in shared memory (n = 4 up to 85 iterations, n = 8 up to 25).
void sinkhorn_backward(const float* logits, const float* grad_out, float* grad_logits, float* scratch, int64_t count,
                       int64_t n, int64_t iters, float eps, Stream stream);
int64_t sinkhorn_scratch_floats(int64_t count, int64_t n, int64_t iters);

// rstd[row] = rsqrt(mean(x[row]^2) + eps) in float32 over rows of `cols` (mHC's RMS-normalised
// projection input, without writing the normalised copy).
void row_rstd(Dtype dtype, const void* x, float* rstd, int64_t rows, int64_t cols, float eps, Stream stream);

// mHC collapse: out [tokens, hidden] = sum_j weights[t, j] streams[t, j, :] (float32 weights
// [tokens, n], float32 sum, one rounding to the dtype).
void hc_collapse_forward(Dtype dtype, const void* streams, const float* weights, void* out, int64_t tokens, int64_t n,
                         int64_t hidden, Stream stream);

// grad_streams [tokens, n, hidden] = weights (x) grad_out and grad_weights [tokens, n] (float32) =
// sum over hidden of grad_out * streams.
void hc_collapse_backward(Dtype dtype, const void* grad_out, const void* streams, const float* weights,
                          void* grad_streams, float* grad_weights, int64_t tokens, int64_t n, int64_t hidden,
                          Stream stream);

// mHC combine: out[t, k, :] = sum_j res[t, j, k] streams[t, j, :] + post[t, k] branch[t, :], with
// float32 post [tokens, n] and res [tokens, n, n], float32 math, one rounding to the dtype.
void hc_combine_forward(Dtype dtype, const void* streams, const void* branch, const float* post, const float* res,
                        void* out, int64_t tokens, int64_t n, int64_t hidden, Stream stream);

// The four gradients of hc_combine_forward: grad_streams and grad_branch in the dtype, grad_post
// and grad_res float32 (sums over hidden in a fixed order).
void hc_combine_backward(Dtype dtype, const void* grad_out, const void* streams, const void* branch, const float* post,
                         const float* res, void* grad_streams, void* grad_branch, float* grad_post, float* grad_res,
                         int64_t tokens, int64_t n, int64_t hidden, Stream stream);

// Largest key dimension and chunk length chunk_state_scan takes (and together they must fit
// chunk_state_scan_fits); larger ones run the twin.
constexpr int64_t kMaxScanKeyDim = 256;
constexpr int64_t kMaxScanChunk = 128;
// Shared memory of one chunk_state_scan block: a key_dim x 16 slice of the carried value, both
// chunk x key_dim matrices and a chunk x 16 slice of y, in float32.
constexpr int64_t chunk_state_scan_shared_bytes(int64_t key_dim, int64_t chunk) {
  return 4 * (16 * key_dim + 2 * chunk * key_dim + 16 * chunk);
}
constexpr bool chunk_state_scan_fits(int64_t key_dim, int64_t chunk) {
  return key_dim >= 4 && key_dim % 4 == 0 && key_dim <= kMaxScanKeyDim && chunk >= 1 && chunk <= kMaxScanChunk &&
         chunk_state_scan_shared_bytes(key_dim, chunk) <= 227 * 1024;  // an H100 block's most
}

// The chunked delta rule's hand-off between chunks, as a scan over the `chunks` chunks of each of
// `pairs` (sequence, head) pairs, all float32 and contiguous:
//   X = x0                                    x0 [pairs, key_dim, value_dim]
//   for n = 0 .. chunks - 1 (reverse: from the last):
//     states[n] = X                           states [pairs, chunks, key_dim, value_dim]
//     y[n] = y_init[n] + y_sign a[n] X        y, y_init [pairs, chunks, chunk, value_dim]
//     X = decay[n] X + x_sign b[n]^T y[n] + x_add[n]   a, b [.., chunks, chunk, key_dim]; decay [.., chunks]
//   x_final = X
// With chunk_offsets (int64 [segments + 1], from 0 to chunks, nondecreasing) each pair's chunks
// form segments, scanned independently: segment s covers chunks chunk_offsets[s] ..
// chunk_offsets[s + 1] - 1, starts from x0[s][pair] and ends in x_final[s][pair] (x0 and x_final
// [segments, pairs, key_dim, value_dim]); without, segments is ignored. x_add may be null (zero).
// key_dim and chunk within chunk_state_scan_fits; a and b 16-byte aligned. The forward and the
// backward of strata::delta_rule_chunk_states.
void chunk_state_scan(const float* x0, const float* y_init, const float* a, const float* b, const float* decay,
                      const float* x_add, const int64_t* chunk_offsets, int64_t segments, float* states, float* y,
                      float* x_final, int64_t pairs, int64_t chunks, int64_t chunk, int64_t key_dim,
                      int64_t value_dim, float y_sign, float x_sign, bool reverse, Stream stream);

// Largest row length (head dimension) the gated RMSNorm kernels take; larger rows run the twin.
constexpr int64_t kMaxGatedRmsNormDim = 1024;

// Element strides of the batch, position and head dimensions of a [B, T, H, D] input whose last
// dimension is contiguous.
struct RowStrides {
  int64_t batch, seq, head;
};

// Gated RMSNorm (Qwen3-Next's RMSNormGated) over the rows of x and gate [B, T, H, D], dim up to
// kMaxGatedRmsNormDim: rstd = rsqrt(mean(x^2) + eps) (float32, one per row, rows ordered (b, t, h)) and
// out = x_dtype(w * float(x_dtype(x * rstd)) * silu(gate)), the roundings the ATen twin does.
// gate_dtype is x_dtype or Float32; w is float32 [dim]; out is contiguous [B, T, H, D].
void gated_rms_norm_forward(Dtype x_dtype, Dtype gate_dtype, const void* x, RowStrides x_strides, const void* gate,
                            RowStrides gate_strides, const float* w, void* out, float* rstd, int64_t batch, int64_t seq,
                            int64_t heads, int64_t dim, float eps, Stream stream);

// The backward, with n = x * rstd, s = silu(gate), g = grad_out (x_dtype, contiguous) and
// d = g * w * s: grad_x = rstd * (d - n * mean(d * n)) (x_dtype), grad_gate = g * w * x_dtype(n) *
// silu'(gate) (gate_dtype), both contiguous [B, T, H, D], and the weight gradient as float32
// partial sums w_partial [blocks, dim] of g * x_dtype(n) * s over row chunks (sum them over dim 0).
// Deterministic: every sum has a fixed order.
void gated_rms_norm_backward(Dtype x_dtype, Dtype gate_dtype, const void* grad_out, const void* x, RowStrides x_strides,
                             const void* gate, RowStrides gate_strides, const float* w, const float* rstd, void* grad_x,
                             void* grad_gate, float* w_partial, int64_t blocks, int64_t batch, int64_t seq,
                             int64_t heads, int64_t dim, Stream stream);

// Most taps (width) the causal conv kernels take; wider ones run the twin. The common widths (4
// in Qwen3-Next and Mamba) fit; each tap costs registers for every channel a thread holds.
constexpr int64_t kMaxConvWidth = 4;
// Time steps one causal conv block covers; the backward writes one row of weight-gradient partial
// sums per (sequence, tile).
constexpr int64_t kConvSeqTile = 128;
inline int64_t causal_conv1d_partial_rows(int64_t batch, int64_t seq) {
  return batch * ((seq + kConvSeqTile - 1) / kConvSeqTile);
}

// Gated DeltaNet's causal depthwise conv1d over time, then SiLU, on x [batch, seq, channels]
// (element strides stride_b, stride_t; channels contiguous) with weight [channels, width] (x's
// dtype, contiguous; width in 1..kMaxConvWidth), x being zero before t = 0:
//   out[b, t, c] = silu(dtype(sum_j weight[c, j] x[b, t - (width - 1) + j, c]))
// out contiguous [batch, seq, channels]. float32 math; the sum is rounded to the dtype before the
// SiLU, as the twin's conv output is. With cu_seqlens (packed documents: int64 [documents + 1] on
// the device, 0 = cu_seqlens[0] < ... < cu_seqlens[documents] = seq, batch 1) x is also zero before
// each document's first token; null for none.
void causal_conv1d_silu_forward(Dtype dtype, const void* x, int64_t stride_b, int64_t stride_t, const void* weight,
                                void* out, const int64_t* cu_seqlens, int64_t documents, int64_t batch, int64_t seq,
                                int64_t channels, int64_t width, Stream stream);

// The backward from grad_out (contiguous [batch, seq, channels]), recomputing the conv: with
// grad_pre = dtype(grad_out * silu'(pre)), grad_x (contiguous, like out) = sum_j weight[c, j]
// grad_pre[b, t + (width - 1) - j, c] (terms from the same document only), and the weight
// gradient as float32 partial sums grad_w_partial [causal_conv1d_partial_rows(batch, seq),
// channels, width] of grad_pre * x over each row's (sequence, time tile) (sum them over dim 0).
// Deterministic: every sum has a fixed order.
void causal_conv1d_silu_backward(Dtype dtype, const void* grad_out, const void* x, int64_t stride_b, int64_t stride_t,
                                 const void* weight, void* grad_x, float* grad_w_partial, const int64_t* cu_seqlens,
                                 int64_t documents, int64_t batch, int64_t seq, int64_t channels, int64_t width,
                                 Stream stream);

// Largest matrix size unit_lower_inverse takes; larger ones run the twin.
constexpr int64_t kMaxUnitLowerInverseSize = 128;

// t = (I + strictly_lower(a))^-1 for `count` contiguous float32 n x n matrices (n in
// 1..kMaxUnitLowerInverseSize); only a's strictly lower triangle is read. t is contiguous and unit
// lower triangular: exact zeros above the diagonal, ones on it. The forward of
// strata::kernels::unit_lower_inverse.
void unit_lower_inverse(const float* a, float* t, int64_t count, int64_t n, Stream stream);

// Widest key (Dk) the decoding step kernel takes: each of its threads keeps Dk / 8 rows of one
// state column in registers. Wider keys run the twin.
constexpr int64_t kMaxDeltaStepKeyDim = 256;

// Element strides of the batch and head dimensions of a [B, H, ...] input (its last dimension,
// if any, contiguous).
struct HeadStrides {
  int64_t batch, head;
};

// One decoding step of the gated delta rule for each (sequence b, head h), in float32, on the
// state S = state[b, h] (float32, contiguous [batch, heads, key_dim, value_dim], advanced in place):
//   S = exp(g) S;   u = beta (v - S^T k);   S = S + k u^T;   out = dtype(S^T q)
// q, k [B, H, key_dim] and g [B, H] float32; v [B, H, value_dim] and beta [B, H] in `dtype`; out
// contiguous [B, H, value_dim] in `dtype`. key_dim up to kMaxDeltaStepKeyDim. The forward of
// strata::kernels::gated_delta_rule_step (inference only: no backward).
void gated_delta_rule_step(Dtype dtype, const float* q, HeadStrides q_strides, const float* k, HeadStrides k_strides,
                           const void* v, HeadStrides v_strides, const float* g, HeadStrides g_strides,
                           const void* beta, HeadStrides beta_strides, float* state, void* out, int64_t batch,
                           int64_t heads, int64_t key_dim, int64_t value_dim, Stream stream);


// The chunked gated delta rule's forward on tensor cores (kernels/gated_delta_chunk_*.cu); its
// backward, gated_delta_chunk_backward, follows. Chunks of kGatedDeltaChunk tokens; key_dim and value_dim
// within gated_delta_chunk_fits (the kernels are compiled for these head sizes).
constexpr int64_t kGatedDeltaChunk = 64;
constexpr bool gated_delta_chunk_fits(int64_t key_dim, int64_t value_dim) { return key_dim == 128 && value_dim == 128; }

// Bytes of scratch the forward needs for `batch` rows of `chunks` chunks and `heads` heads: the
// in-chunk cumulative gates (float32), W, U (overwritten by the corrections), the state entering
// each chunk and T = (I + A)^-1 (bfloat16). After a forward it holds what the backward would
// otherwise recompute.
int64_t gated_delta_chunk_workspace_bytes(int64_t batch, int64_t heads, int64_t chunks, int64_t key_dim,
                                          int64_t value_dim);

// Per (row b, head h), with S [key_dim, value_dim] starting from initial_state (zeros when null):
//   S = exp(g_t) S;  delta = beta_t (v_t - S^T k_t);  S = S + k_t delta^T;  out_t = S^T q_t
// q, k [batch, seq, key_heads, key_dim] (qk_dtype) and v [batch, seq, heads, value_dim] (v_dtype)
// at element strides *_strides (value head h reads key head h / (heads / key_heads): grouped value
// heads, HF's and Megatron's repeat_interleave of the key heads without the copy), the last
// dimension contiguous, 16-byte aligned rows (pointer and strides multiples of 16 bytes); g
// (g_dtype) and beta (beta_dtype) contiguous [batch, seq, heads]; out contiguous [batch, seq, heads,
// value_dim] in v_dtype; final_state float32 [segments, heads, key_dim, value_dim]. Tensor-core
// products take bfloat16 operands with float32 accumulation; the state is carried in float32 and
// handed to the output pass in bfloat16.
// Without chunk_tokens, row b's tokens are split into `chunks` = ceil(seq / 64) chunks and
// segments = batch. With packed documents (batch 1), chunk_tokens (int32 [chunks, 2], device)
// gives each chunk's first token and length (no chunk spans two documents) and segment_chunks
// (int32 [segments + 1], device, from 0 to chunks) the chunks of each document, whose state
// starts from initial_state[segment]. `workspace` holds gated_delta_chunk_workspace_bytes, 256-byte
// aligned. keep_for_backward: leave in the workspace every intermediate that
// gated_delta_chunk_backward reads (recompute false); without it the forward skips writing those
// only the backward needs.
struct GatedDeltaChunkForward {
  Dtype qk_dtype, v_dtype;
  const void* q;
  RowStrides q_strides;
  const void* k;
  RowStrides k_strides;
  const void* v;
  RowStrides v_strides;
  const void* g;
  Dtype g_dtype;
  const void* beta;
  Dtype beta_dtype;
  const float* initial_state;  // null for zeros
  const int* chunk_tokens;     // null without packed documents
  const int* segment_chunks;   // null without packed documents
  void* out;
  float* final_state;
  void* workspace;
  int64_t batch, seq, heads, key_heads, key_dim, value_dim, chunks, segments;
  bool keep_for_backward;
};
void gated_delta_chunk_forward(const GatedDeltaChunkForward& args, Stream stream);

// The chunked gated delta rule's backward on tensor cores (kernels/gated_delta_chunk_backward_*.cu):
// given the forward's inputs (`forward`, whose out and final_state are not read) and d_out
// [batch, seq, heads, value_dim] (v_dtype, at d_out_strides, 16-byte aligned rows), with
// d_final_state (float32 [segments, heads, key_dim, value_dim], null for zeros), writes dq, dk
// (qk_dtype) and dv (v_dtype) contiguous [batch, seq, heads, dim], dg and dbeta (float32
// contiguous [batch, seq, heads]) and, where not null, d_initial_state (float32 [segments, heads,
// key_dim, value_dim]). forward.workspace either still holds what gated_delta_chunk_forward left
// there for these inputs with keep_for_backward (recompute false: the forward's intermediates
// kept), or is scratch that the forward's prepare and states passes fill first (recompute true).
// `workspace` holds gated_delta_chunk_backward_workspace_bytes for the backward's own arrays; both
// 256-byte aligned.
int64_t gated_delta_chunk_backward_workspace_bytes(int64_t batch, int64_t heads, int64_t chunks, int64_t segments,
                                                   int64_t key_dim, int64_t value_dim);

struct GatedDeltaChunkBackward {
  GatedDeltaChunkForward forward;
  bool recompute;
  void* workspace;
  const void* d_out;
  RowStrides d_out_strides;
  const float* d_final_state;  // null for zeros
  void* dq;
  void* dk;
  void* dv;
  float* dg;
  float* dbeta;
  float* d_initial_state;  // null when not wanted
};
void gated_delta_chunk_backward(const GatedDeltaChunkBackward& args, Stream stream);

}  // namespace strata::kernels::launch
