// One decoding step of the gated delta rule, fused: the state is read once and written once.
// A block owns 32 value columns of one (sequence, head) state: lane j of each of its 8 warps holds
// column j's entries for one slice of key rows in registers. Each thread sums k . S[:, j] and
// q . S[:, j] (and q . k) over its rows; the 8 slices' sums meet in shared memory, in a fixed order,
// and every thread gets the column's totals. Then
//   u_j = beta (v_j - alpha k . S[:, j]),   out_j = alpha q . S[:, j] + (q . k) u_j,
// which is S'^T q for the updated S' = alpha S + k u^T without a second pass over S, and each
// thread writes its rows of S'. The step is memory-bound: one read and one write of the state.
#include <cmath>

#include "common.cuh"

namespace strata::kernels {

namespace {

using namespace device;
using launch::HeadStrides;

constexpr int kColumns = 32;  // a warp's lanes across value columns: the state rows are read coalesced
constexpr int kGroups = 8;    // warps per block, each a slice of the key rows
constexpr int kThreads = kColumns * kGroups;

__device__ __forceinline__ int64_t offset_of(HeadStrides s, int64_t b, int64_t h) { return b * s.batch + h * s.head; }

// R key rows per thread: key_dim <= R * kGroups.
template <class T, int R>
__global__ void __launch_bounds__(kThreads)
    step_kernel(const float* __restrict__ q, HeadStrides qs, const float* __restrict__ k, HeadStrides ks,
                const T* __restrict__ v, HeadStrides vs, const float* __restrict__ g, HeadStrides gs,
                const T* __restrict__ beta, HeadStrides betas, float* __restrict__ state, T* __restrict__ out,
                int heads, int key_dim, int value_dim) {
  __shared__ float q_shared[R * kGroups], k_shared[R * kGroups];
  __shared__ float sums[3][kGroups][kColumns];
  const int64_t pair = blockIdx.x;  // b * heads + h
  const int64_t b = pair / heads, h = pair % heads;
  const int lane = threadIdx.x % kColumns, group = threadIdx.x / kColumns;
  const int column = blockIdx.y * kColumns + lane;
  const bool live = column < value_dim;

  // q and k, zero past key_dim so that every slice sums whole rows.
  for (int i = threadIdx.x; i < R * kGroups; i += kThreads) {
    q_shared[i] = i < key_dim ? q[offset_of(qs, b, h) + i] : 0.0f;
    k_shared[i] = i < key_dim ? k[offset_of(ks, b, h) + i] : 0.0f;
  }
  __syncthreads();

  float* s = state + pair * key_dim * value_dim;
  const int first_row = group * R;
  float x[R];
  float k_dot = 0.0f, q_dot = 0.0f, qk = 0.0f;
#pragma unroll
  for (int m = 0; m < R; ++m) {
    const int r = first_row + m;
    x[m] = r < key_dim && live ? s[static_cast<int64_t>(r) * value_dim + column] : 0.0f;
    k_dot += k_shared[r] * x[m];
    q_dot += q_shared[r] * x[m];
    qk += q_shared[r] * k_shared[r];
  }
  sums[0][group][lane] = k_dot;
  sums[1][group][lane] = q_dot;
  sums[2][group][lane] = qk;
  __syncthreads();
  k_dot = q_dot = qk = 0.0f;
#pragma unroll
  for (int i = 0; i < kGroups; ++i) {
    k_dot += sums[0][i][lane];
    q_dot += sums[1][i][lane];
    qk += sums[2][i][lane];
  }
  if (!live) return;

  const float alpha = expf(g[offset_of(gs, b, h)]);
  const float u = to_float(beta[offset_of(betas, b, h)]) * (to_float(v[offset_of(vs, b, h) + column]) - alpha * k_dot);
#pragma unroll
  for (int m = 0; m < R; ++m) {
    const int r = first_row + m;
    if (r < key_dim) s[static_cast<int64_t>(r) * value_dim + column] = alpha * x[m] + k_shared[r] * u;
  }
  if (group == 0) out[pair * value_dim + column] = from_float<T>(alpha * q_dot + qk * u);
}

// Calls f(std::integral_constant<int, R>{}) with R the fewest rows per thread (a power of two)
// that cover key_dim.
template <class F>
void dispatch_rows(int64_t key_dim, F&& f) {
  if (key_dim <= 1 * kGroups) return f(std::integral_constant<int, 1>{});
  if (key_dim <= 2 * kGroups) return f(std::integral_constant<int, 2>{});
  if (key_dim <= 4 * kGroups) return f(std::integral_constant<int, 4>{});
  if (key_dim <= 8 * kGroups) return f(std::integral_constant<int, 8>{});
  if (key_dim <= 16 * kGroups) return f(std::integral_constant<int, 16>{});
  if (key_dim <= 32 * kGroups) return f(std::integral_constant<int, 32>{});
  fail("gated_delta_rule_step: key_dim ", key_dim, ", expected at most ", launch::kMaxDeltaStepKeyDim);
}

static_assert(32 * kGroups == launch::kMaxDeltaStepKeyDim);

}  // namespace

namespace launch {

void gated_delta_rule_step(Dtype dtype, const float* q, HeadStrides q_strides, const float* k, HeadStrides k_strides,
                           const void* v, HeadStrides v_strides, const float* g, HeadStrides g_strides,
                           const void* beta, HeadStrides beta_strides, float* state, void* out, int64_t batch,
                           int64_t heads, int64_t key_dim, int64_t value_dim, Stream stream) {
  if (batch * heads * key_dim * value_dim == 0) return;
  const int64_t pairs = batch * heads, column_tiles = (value_dim + kColumns - 1) / kColumns;
  if (pairs > 0x7fffffff || column_tiles > 65535)
    fail("gated_delta_rule_step: ", pairs, " (sequence, head) pairs and ", value_dim,
         " value columns; expected at most 2^31 - 1 pairs and ", 65535 * kColumns, " columns");
  const dim3 grid(static_cast<unsigned>(pairs), static_cast<unsigned>(column_tiles));
  host::dispatch(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    dispatch_rows(key_dim, [&](auto rows) {
      constexpr int R = decltype(rows)::value;
      step_kernel<T, R><<<grid, kThreads, 0, host::as_cuda(stream)>>>(
          q, q_strides, k, k_strides, static_cast<const T*>(v), v_strides, g, g_strides, static_cast<const T*>(beta),
          beta_strides, state, static_cast<T*>(out), static_cast<int>(heads), static_cast<int>(key_dim),
          static_cast<int>(value_dim));
    });
  });
  host::check_launch("gated_delta_rule_step");
}

}  // namespace launch

}  // namespace strata::kernels
