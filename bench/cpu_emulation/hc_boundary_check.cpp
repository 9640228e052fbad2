// The mHC boundary's per-token kernels (kernels/hc_boundary.cu: hc_boundary_collapse, and
// hc_boundary_projection_grad) on the CPU emulation (emulation.h), against their formulas in
// float64 written out here from the same stored inputs: f = product * rstd, pre = sigmoid(scale[0]
// f + base) + eps and the collapse; the collapse weights' dots, dL/dlogit through pre's sigmoid,
// dL/df, a = rstd dL/df, the RMS coefficient c, base's and scale's per-token terms and their sums
// (hc_boundary_bias_grads). n from 1 to 8, token counts that fill no block, hidden sizes that take
// the vector loads and that do not, float32 and bfloat16 streams, with and without grad_input and
// grad_f. Prints PASS or FAIL. Run by hc_run.sh.
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

struct Case {
  int n, tokens, hidden;
  bool bf16, grad_input, grad_f;
};

// Values stored in the case's dtype, 64-byte aligned (the kernels' vector loads need 16).
struct Stored {
  bool bf16;
  size_t count;
  void* data;
  Stored(bool half, size_t n) : bf16(half), count(n), data(std::aligned_alloc(64, (n * 4 + 63) / 64 * 64 + 64)) {}
  ~Stored() { std::free(data); }
  void set(size_t i, float x) {
    if (bf16)
      static_cast<uint16_t*>(data)[i] = bf16_bits(x);
    else
      static_cast<float*>(data)[i] = x;
  }
  double get(size_t i) const {
    return bf16 ? bf16_value(static_cast<const uint16_t*>(data)[i]) : static_cast<const float*>(data)[i];
  }
};

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

bool check(const Case& k, unsigned seed) {
  const int n = k.n, T = k.tokens, H = k.hidden, M = 2 * n + n * n;
  const float eps = 1e-6f;
  const Dtype dtype = k.bf16 ? Dtype::BFloat16 : Dtype::Float32;
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  Stored streams(k.bf16, size_t(T) * n * H), product(k.bf16, size_t(T) * M), grad_input(k.bf16, size_t(T) * H);
  for (size_t i = 0; i < streams.count; ++i) streams.set(i, normal(gen));
  for (size_t i = 0; i < product.count; ++i) product.set(i, 3.0f * normal(gen));
  for (size_t i = 0; i < grad_input.count; ++i) grad_input.set(i, normal(gen));
  std::vector<float> rstd(T), base(M), scale(3), grad_f(size_t(T) * M);
  for (auto& x : rstd) x = 0.05f + 0.1f * std::abs(normal(gen));
  for (auto& x : base) x = 0.5f * normal(gen);
  for (auto& x : scale) x = 1.0f + 0.3f * normal(gen);
  for (auto& x : grad_f) x = normal(gen);

  // The kernels.
  Stored out(k.bf16, size_t(T) * H), a(k.bf16, size_t(T) * M);
  std::vector<float> f(size_t(T) * M, NAN), c(T, NAN), pre(size_t(T) * n, NAN), gl(size_t(T) * n, NAN),
      glf(size_t(T) * n, NAN);
  hc_boundary_collapse(dtype, streams.data, product.data, rstd.data(), base.data(), scale.data(), eps, out.data,
                       f.data(), T, n, H, nullptr);
  hc_boundary_projection_grad(dtype, k.grad_input ? grad_input.data : nullptr, streams.data, f.data(),
                              k.grad_f ? grad_f.data() : nullptr, rstd.data(), base.data(), scale.data(), eps, a.data,
                              c.data(), pre.data(), gl.data(), glf.data(), T, n, H, nullptr);
  std::vector<float> grad_base(M, NAN), grad_scale(3, NAN);
  hc_boundary_bias_grads(gl.data(), glf.data(), T, n, grad_base.data(), grad_scale.data(), nullptr);

  // The formulas in float64 from the stored inputs.
  std::vector<double> f_ref(size_t(T) * M), out_ref(size_t(T) * H), pre_ref(size_t(T) * n), a_ref(size_t(T) * M),
      c_ref(T), gl_ref(size_t(T) * n), glf_ref(size_t(T) * n);
  for (int t = 0; t < T; ++t) {
    for (int m = 0; m < M; ++m) f_ref[t * M + m] = product.get(size_t(t) * M + m) * rstd[t];
    for (int h = 0; h < H; ++h) {
      double sum = 0;
      for (int j = 0; j < n; ++j)
        sum += (sigmoid(double(scale[0]) * f_ref[t * M + j] + base[j]) + eps) * streams.get((size_t(t) * n + j) * H + h);
      out_ref[size_t(t) * H + h] = sum;
    }
    double dot = 0;
    for (int m = 0; m < M; ++m) {
      const double x = f[t * M + m];  // the kernel's f, as the backward reads it
      double df = k.grad_f ? grad_f[t * M + m] : 0.0;
      if (m < n) {
        double dpre = 0;
        if (k.grad_input)
          for (int h = 0; h < H; ++h)
            dpre += grad_input.get(size_t(t) * H + h) * streams.get((size_t(t) * n + m) * H + h);
        const double s = sigmoid(double(scale[0]) * x + base[m]);
        const double g = dpre * s * (1 - s);
        df += g * scale[0];
        pre_ref[t * n + m] = s + eps;
        gl_ref[t * n + m] = g;
        glf_ref[t * n + m] = g * x;
      }
      a_ref[t * M + m] = df * rstd[t];
      dot += df * x;
    }
    c_ref[t] = dot * double(rstd[t]) * rstd[t] / (double(n) * H);
  }

  // base's and scale's gradients: the sums of the kernel's per-token terms, zero where pre has none;
  // judged against the sums of the terms' magnitudes (float32 sums of terms that cancel).
  std::vector<double> base_ref(M, 0.0), scale_ref(3, 0.0);
  double magnitude = 0;
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < n; ++j) {
      base_ref[j] += gl[t * n + j];
      scale_ref[0] += glf[t * n + j];
      magnitude += std::abs(gl[t * n + j]) + std::abs(glf[t * n + j]);
    }

  const double tol = k.bf16 ? 8e-3 : 2e-6;
  const double e_f = rel([&](size_t i) { return double(f[i]); }, f_ref);
  const double e_out = rel([&](size_t i) { return out.get(i); }, out_ref);
  const double e_pre = rel([&](size_t i) { return double(pre[i]); }, pre_ref);
  const double e_a = rel([&](size_t i) { return a.get(i); }, a_ref);
  const double e_c = rel([&](size_t i) { return double(c[i]); }, c_ref);
  const double e_gl = rel([&](size_t i) { return double(gl[i]); }, gl_ref);
  const double e_glf = rel([&](size_t i) { return double(glf[i]); }, glf_ref);
  double e_bias = 0;
  for (int m = 0; m < M; ++m) e_bias = std::max(e_bias, std::abs(grad_base[m] - base_ref[m]) / magnitude);
  for (int i = 0; i < 3; ++i) e_bias = std::max(e_bias, std::abs(grad_scale[i] - scale_ref[i]) / magnitude);
  const bool pass = e_f <= 1e-6 && e_pre <= 1e-6 && e_out <= tol && e_a <= tol && e_c <= 1e-5 && e_gl <= 1e-5 &&
                    e_glf <= 1e-5 && e_bias <= 1e-6;
  std::printf("%s n %d tokens %d hidden %d %s grad_input %d grad_f %d: f %.1e pre %.1e out %.1e | a %.1e c %.1e "
              "dlogit %.1e dlogit f %.1e base and scale %.1e\n",
              pass ? "ok  " : "FAIL", n, T, H, k.bf16 ? "bf16" : "fp32", k.grad_input, k.grad_f, e_f, e_pre, e_out,
              e_a, e_c, e_gl, e_glf, e_bias);
  return pass;
}

}  // namespace

int main() {
  bool pass = true;
  unsigned seed = 1;
  for (int n : {1, 2, 3, 4, 8})
    for (int hidden : {24, 7, 520})
      for (bool bf16 : {false, true}) pass &= check({n, 5, hidden, bf16, true, true}, seed++);
  for (int n : {2, 4}) {
    pass &= check({n, 9, 24, false, false, true}, seed++);
    pass &= check({n, 9, 24, false, true, false}, seed++);
    pass &= check({n, 9, 24, true, false, false}, seed++);
  }
  pass &= check({4, 1, 1030, false, true, true}, seed++);
  std::printf("%s (hc_boundary's per-token kernels on the CPU emulation)\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
