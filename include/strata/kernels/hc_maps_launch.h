#pragma once
// The raw CUDA launchers of mHC's post and res maps (kernels/hc_maps.cu; strata::kernels::
// hc_post_res_maps is the ATen-facing op). Same conventions as launch.h: device pointers,
// contiguous float32 arrays, asynchronous on `stream`; a CPU-only build's stubs throw. Kept out of
// launch.h so that the other kernels' wrappers do not recompile for them.
#include "strata/kernels/launch.h"

namespace strata::kernels::launch {

// From f [tokens, M] (M = n (n + 2): the pre, post and res columns), base [M] and scale [3],
// with n <= kMaxHyperStreams:
//   post[t, i]    = 2 sigmoid(scale[1] f[t, n + i] + base[n + i])                    [tokens, n]
//   res[t, i, j]  = Sinkhorn-Knopp of (scale[2] f[t, 2n + i n + j] + base[2n + i n + j]) [tokens, n, n]
// in strata::sinkhorn_knopp's order (launch::sinkhorn_forward), with the logits in registers.
void hc_post_res_forward(const float* f, const float* base, const float* scale, float* post, float* res, int64_t tokens,
                         int64_t n, int64_t iters, float eps, Stream stream);

// Floats of the backward's workspace: per-block partial sums of the base and scale gradients,
// and the Sinkhorn checkpoints that do not fit in shared memory (launch::sinkhorn_backward's).
int64_t hc_post_res_workspace_floats(int64_t tokens, int64_t n, int64_t iters);

// The backward from grad_post [tokens, n] and grad_res [tokens, n, n] (either null: zero),
// rerunning the forward from f: grad_f [tokens, M] (its pre columns 0..n zero), and grad_base [M]
// (pre entries zero) and grad_scale [3] (entry 0 zero), the sums over tokens, added in a fixed
// order (partial sums per block of tokens, then over the blocks), so the same inputs give the
// same bits. `workspace` holds hc_post_res_workspace_floats(tokens, n, iters) floats.
void hc_post_res_backward(const float* f, const float* base, const float* scale, const float* grad_post,
                          const float* grad_res, float* grad_f, float* grad_base, float* grad_scale, float* workspace,
                          int64_t tokens, int64_t n, int64_t iters, float eps, Stream stream);

}  // namespace strata::kernels::launch
