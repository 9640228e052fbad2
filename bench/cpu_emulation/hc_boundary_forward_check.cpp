// The mHC boundary's one-kernel forward for bfloat16 streams (kernels/hc_boundary_forward.cu:
// hc_boundary_forward) on the CPU emulation (emulation.h), against its formulas in float64: the
// combine from the stored inputs, and from the kernel's stored new streams the RMS factor, the
// projection f = (new_streams . fn) rstd, pre = sigmoid(scale[0] f + base) + eps and the collapse.
// n from 1 to 8, token counts that fill a block of 16, that do not, and that take two; several
// steps over hidden. Prints PASS or FAIL. Run by hc_run.sh.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

bool check(int n, int T, int H, unsigned seed) {
  const int M = 2 * n + n * n;
  const float norm_eps = 1e-6f, eps = 1e-6f;
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  Bf16 streams(size_t(T) * n * H), branch(size_t(T) * H), fn(size_t(M) * n * H);
  for (size_t i = 0; i < streams.count; ++i) streams.data[i] = bf16_bits(2.0f * normal(gen));
  for (size_t i = 0; i < branch.count; ++i) branch.data[i] = bf16_bits(normal(gen));
  for (size_t i = 0; i < fn.count; ++i) fn.data[i] = bf16_bits(0.2f * normal(gen));
  std::vector<float> post(size_t(T) * n), res(size_t(T) * n * n), base(M), scale(3);
  for (auto& x : post) x = 2.0f * uniform(gen);
  for (auto& x : res) x = uniform(gen) / n;
  for (auto& x : base) x = 0.5f * normal(gen);
  for (auto& x : scale) x = 1.0f + 0.3f * normal(gen);

  Bf16 new_streams(size_t(T) * n * H), next_input(size_t(T) * H);
  std::vector<float> f(size_t(T) * M, NAN), rstd(T, NAN);
  hc_boundary_forward(streams.data, branch.data, post.data(), res.data(), fn.data, base.data(), scale.data(),
                      norm_eps, eps, new_streams.data, next_input.data, f.data(), rstd.data(), T, n, H, nullptr);

  std::vector<double> combine_ref(size_t(T) * n * H), rstd_ref(T), f_ref(size_t(T) * M), pre(size_t(T) * n),
      collapse_ref(size_t(T) * H);
  for (int t = 0; t < T; ++t) {
    double squares = 0;
    for (int k = 0; k < n; ++k)
      for (int h = 0; h < H; ++h) {
        double sum = post[t * n + k] * branch[size_t(t) * H + h];
        for (int j = 0; j < n; ++j) sum += res[(t * n + j) * n + k] * streams[(size_t(t) * n + j) * H + h];
        combine_ref[(size_t(t) * n + k) * H + h] = sum;
        const double stored = new_streams[(size_t(t) * n + k) * H + h];
        squares += stored * stored;
      }
    rstd_ref[t] = 1.0 / std::sqrt(squares / (double(n) * H) + norm_eps);
    for (int m = 0; m < M; ++m) {
      double dot = 0;
      for (size_t i = 0; i < size_t(n) * H; ++i) dot += new_streams[size_t(t) * n * H + i] * fn[m * size_t(n) * H + i];
      f_ref[t * M + m] = dot * rstd_ref[t];
    }
    for (int k = 0; k < n; ++k) pre[t * n + k] = sigmoid(double(scale[0]) * f[t * M + k] + base[k]) + eps;  // the kernel's f
    for (int h = 0; h < H; ++h) {
      double sum = 0;
      for (int j = 0; j < n; ++j) sum += pre[t * n + j] * new_streams[(size_t(t) * n + j) * H + h];
      collapse_ref[size_t(t) * H + h] = sum;
    }
  }

  const double e_combine = rel([&](size_t i) { return new_streams[i]; }, combine_ref);
  const double e_rstd = rel([&](size_t i) { return double(rstd[i]); }, rstd_ref);
  const double e_f = rel([&](size_t i) { return double(f[i]); }, f_ref);
  const double e_collapse = rel([&](size_t i) { return next_input[i]; }, collapse_ref);
  const bool pass = e_combine <= 8e-3 && e_rstd <= 1e-5 && e_f <= 1e-5 && e_collapse <= 8e-3;
  std::printf("%s n %d tokens %d hidden %d: new streams %.1e rstd %.1e f %.1e next input %.1e\n",
              pass ? "ok  " : "FAIL", n, T, H, e_combine, e_rstd, e_f, e_collapse);
  return pass;
}

}  // namespace

int main() {
  bool pass = true;
  unsigned seed = 1;
  for (int n : {1, 2, 3, 4, 5, 8}) {
    const int step = n <= 4 ? 128 : 64;
    for (int tokens : {5, 16, 21}) pass &= check(n, tokens, step * (tokens == 21 ? 3 : 1), seed++);
  }
  std::printf("%s (hc_boundary's one-kernel forward on the CPU emulation)\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
