// The mHC boundary's one-kernel backward for bfloat16 streams (kernels/hc_boundary_backward.cu:
// hc_boundary_backward_fused) on the CPU emulation (emulation.h), against its formulas in float64:
// G_k = grad_new_k + pre_k grad_input + (a fn)_k - c new_streams_k from the stored inputs, then
// grad_streams_j = sum_k res_jk G_k, grad_branch = sum_k post_k G_k, grad_post_k = <G_k, branch>
// and grad_res_jk = <streams_j, G_k>. n from 1 to 8, token counts that fill a block of 16, that
// do not, and that take two; several steps over hidden; with and without each incoming gradient.
// Prints PASS or FAIL. Run by hc_run.sh.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "check_values.h"
#include "strata/kernels/hc_boundary_launch.h"

using namespace strata::kernels::launch;
using emulation_check::bf16_bits;
using emulation_check::bf16_value;
using emulation_check::rel;

namespace {

// bfloat16 values, 64-byte aligned (the kernel's vector loads need 16).
struct Bf16 {
  size_t count;
  uint16_t* data;
  explicit Bf16(size_t n)
      : count(n), data(static_cast<uint16_t*>(std::aligned_alloc(64, (n * 2 + 63) / 64 * 64 + 64))) {
    for (size_t i = 0; i < n; ++i) data[i] = 0x7fc0;  // NaN until written
  }
  ~Bf16() { std::free(data); }
  double operator[](size_t i) const { return bf16_value(data[i]); }
};

bool check(int n, int T, int H, bool with_grad_new, bool with_grad_input, unsigned seed) {
  const int M = 2 * n + n * n;
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  auto fill = [&](Bf16& x, float scale) {
    for (size_t i = 0; i < x.count; ++i) x.data[i] = bf16_bits(scale * normal(gen));
  };
  Bf16 grad_new(size_t(T) * n * H), grad_input(size_t(T) * H), a(size_t(T) * M), fn(size_t(M) * n * H);
  Bf16 new_streams(size_t(T) * n * H), streams(size_t(T) * n * H), branch(size_t(T) * H);
  fill(grad_new, 1.0f);
  fill(grad_input, 1.0f);
  fill(a, 0.5f);
  fill(fn, 0.2f);
  fill(new_streams, 2.0f);
  fill(streams, 2.0f);
  fill(branch, 1.0f);
  std::vector<float> pre(size_t(T) * n), c(T), post(size_t(T) * n), res(size_t(T) * n * n);
  for (auto& x : pre) x = uniform(gen);
  for (auto& x : c) x = 0.1f * normal(gen);
  for (auto& x : post) x = 2.0f * uniform(gen);
  for (auto& x : res) x = uniform(gen) / n;

  Bf16 grad_streams(size_t(T) * n * H), grad_branch(size_t(T) * H);
  std::vector<float> grad_post(size_t(T) * n, NAN), grad_res(size_t(T) * n * n, NAN);
  hc_boundary_backward_fused(with_grad_new ? grad_new.data : nullptr, with_grad_input ? grad_input.data : nullptr,
                             a.data, fn.data, pre.data(), c.data(), new_streams.data, streams.data, branch.data,
                             post.data(), res.data(), grad_streams.data, grad_branch.data, grad_post.data(),
                             grad_res.data(), T, n, H, nullptr);

  std::vector<double> streams_ref(size_t(T) * n * H), branch_ref(size_t(T) * H), post_ref(size_t(T) * n),
      res_ref(size_t(T) * n * n), G(size_t(n) * H);
  for (int t = 0; t < T; ++t) {
    for (int k = 0; k < n; ++k)
      for (int h = 0; h < H; ++h) {
        const size_t at = (size_t(t) * n + k) * H + h;
        double product = 0;
        for (int m = 0; m < M; ++m) product += a[size_t(t) * M + m] * fn[(size_t(m) * n + k) * H + h];
        double g = product - double(c[t]) * new_streams[at];
        if (with_grad_input) g += double(pre[t * n + k]) * grad_input[size_t(t) * H + h];
        if (with_grad_new) g += grad_new[at];
        G[size_t(k) * H + h] = g;
      }
    for (int h = 0; h < H; ++h) {
      double db = 0;
      for (int k = 0; k < n; ++k) db += double(post[t * n + k]) * G[size_t(k) * H + h];
      branch_ref[size_t(t) * H + h] = db;
      for (int j = 0; j < n; ++j) {
        double ds = 0;
        for (int k = 0; k < n; ++k) ds += double(res[(t * n + j) * n + k]) * G[size_t(k) * H + h];
        streams_ref[(size_t(t) * n + j) * H + h] = ds;
      }
    }
    for (int k = 0; k < n; ++k) {
      double dp = 0;
      for (int h = 0; h < H; ++h) dp += G[size_t(k) * H + h] * branch[size_t(t) * H + h];
      post_ref[t * n + k] = dp;
      for (int j = 0; j < n; ++j) {
        double dr = 0;
        for (int h = 0; h < H; ++h) dr += streams[(size_t(t) * n + j) * H + h] * G[size_t(k) * H + h];
        res_ref[(t * n + j) * n + k] = dr;
      }
    }
  }

  const double e_streams = rel([&](size_t i) { return grad_streams[i]; }, streams_ref);
  const double e_branch = rel([&](size_t i) { return grad_branch[i]; }, branch_ref);
  const double e_post = rel([&](size_t i) { return double(grad_post[i]); }, post_ref);
  const double e_res = rel([&](size_t i) { return double(grad_res[i]); }, res_ref);
  const bool pass = e_streams <= 8e-3 && e_branch <= 8e-3 && e_post <= 1e-5 && e_res <= 1e-5;
  std::printf("%s n %d tokens %d hidden %d grad_new %d grad_input %d: streams %.1e branch %.1e post %.1e res %.1e\n",
              pass ? "ok  " : "FAIL", n, T, H, with_grad_new, with_grad_input, e_streams, e_branch, e_post, e_res);
  return pass;
}

}  // namespace

int main() {
  bool pass = true;
  unsigned seed = 1;
  for (int n : {1, 2, 3, 4, 5, 8}) {
    const int step = n <= 4 ? 64 : 32;
    for (int tokens : {5, 16, 21}) pass &= check(n, tokens, step * (tokens == 21 ? 3 : 1), true, true, seed++);
  }
  pass &= check(4, 21, 128, false, true, seed++);
  pass &= check(4, 21, 128, true, false, seed++);
  pass &= check(2, 7, 64, false, false, seed++);
  std::printf("%s (hc_boundary's one-kernel backward on the CPU emulation)\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
