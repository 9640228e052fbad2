// Gated DeltaNet's q and k normalisation kernels (kernels/l2_normalize_heads.cu) on the CPU
// emulation (emulation.h), against float64 formulas written out here: the forward's rows
// normalised, scaled and written once per repeated head (heads-first), the backward's gradient
// of x with the repeated heads' gradients summed. float32 and bfloat16; x strided as a slice of
// the convolution's output; the gradient token-major and heads-first; heads of 1 to 256 elements,
// 1 to 4 repeats, rows that fill no block. Prints PASS or FAIL. Run by run.sh.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check_values.h"
#include "strata/kernels/l2_normalize_heads_launch.h"

using namespace strata::kernels::launch;
using namespace emulation_check;

namespace {

struct Case {
  int batch, seq, key_heads, dim, repeats;
  bool bf16, heads_first_grad;
};

// Values stored in the case's dtype: float32, or bfloat16 bits.
struct Stored {
  bool bf16;
  std::vector<float> f;
  std::vector<uint16_t> b;
  Stored(bool bf16, size_t n) : bf16(bf16), f(bf16 ? 0 : n), b(bf16 ? n : 0) {}
  void set(size_t i, float x) {
    if (bf16)
      b[i] = bf16_bits(x);
    else
      f[i] = x;
  }
  double at(size_t i) const { return bf16 ? bf16_value(b[i]) : f[i]; }
  size_t size() const { return bf16 ? b.size() : f.size(); }
  void* data() { return bf16 ? static_cast<void*>(b.data()) : static_cast<void*>(f.data()); }
};

bool run(const Case& c, std::mt19937& rng) {
  const int B = c.batch, T = c.seq, Hk = c.key_heads, D = c.dim, R = c.repeats, H = Hk * R;
  const double scale = 0.37, eps = 1e-6;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // x: the first Hk D channels of rows of 2 Hk D + 8 channels, as the convolution's output holds q.
  const int channels = 2 * Hk * D + 8;
  Stored x(c.bf16, static_cast<size_t>(B) * T * channels);
  for (size_t i = 0; i < x.size(); ++i) x.set(i, 3.0f * normal(rng));
  const RowStrides xs{static_cast<int64_t>(T) * channels, channels, D};
  const auto x_at = [&](int b, int t, int j, int d) { return x.at(b * xs.batch + t * xs.seq + j * xs.head + d); };

  Stored out(c.bf16, static_cast<size_t>(B) * H * T * D);
  const Dtype dtype = c.bf16 ? Dtype::BFloat16 : Dtype::Float32;
  l2_normalize_heads_forward(dtype, x.data(), xs, out.data(), B, T, Hk, R, D, static_cast<float>(scale),
                             static_cast<float>(eps), nullptr);

  Stored grad(c.bf16, static_cast<size_t>(B) * T * H * D);
  for (size_t i = 0; i < grad.size(); ++i) grad.set(i, normal(rng));
  const RowStrides gs = c.heads_first_grad ? RowStrides{static_cast<int64_t>(H) * T * D, D, static_cast<int64_t>(T) * D}
                                           : RowStrides{static_cast<int64_t>(T) * H * D, static_cast<int64_t>(H) * D, D};
  Stored grad_x(c.bf16, static_cast<size_t>(B) * T * Hk * D);
  l2_normalize_heads_backward(dtype, grad.data(), gs, x.data(), xs, grad_x.data(), B, T, Hk, R, D,
                              static_cast<float>(scale), static_cast<float>(eps), nullptr);

  std::vector<double> want_out(out.size()), want_grad(grad_x.size());
  double term = 0;  // the largest |scale r dn|: the gradient's two terms cancel down to far less where D is small
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < Hk; ++j) {
        double squares = 0, dot = 0;
        std::vector<double> dn(D, 0.0);
        for (int d = 0; d < D; ++d) squares += x_at(b, t, j, d) * x_at(b, t, j, d);
        for (int r = 0; r < R; ++r)
          for (int d = 0; d < D; ++d) dn[d] += grad.at(b * gs.batch + t * gs.seq + (j * R + r) * gs.head + d);
        for (int d = 0; d < D; ++d) dot += dn[d] * x_at(b, t, j, d);
        const double inv = 1.0 / std::sqrt(squares + eps);
        for (int r = 0; r < R; ++r)
          for (int d = 0; d < D; ++d)
            want_out[((static_cast<size_t>(b) * H + j * R + r) * T + t) * D + d] = scale * x_at(b, t, j, d) * inv;
        for (int d = 0; d < D; ++d) term = std::max(term, std::abs(scale * inv * dn[d]));
        for (int d = 0; d < D; ++d)
          want_grad[((static_cast<size_t>(b) * T + t) * Hk + j) * D + d] =
              scale * (inv * dn[d] - inv * inv * inv * x_at(b, t, j, d) * dot);
      }
  const double out_error = rel([&](size_t i) { return out.at(i); }, want_out);
  // The gradient's error against its terms' size: at D = 1 the exact gradient is scale eps r^3 dn,
  // all cancellation in float32 (as in the LibTorch twin), so only that bar means anything there.
  double grad_error = 0;
  for (size_t i = 0; i < want_grad.size(); ++i) grad_error = std::max(grad_error, std::abs(grad_x.at(i) - want_grad[i]));
  grad_error /= term;
  // One rounding to the dtype (bfloat16: 2^-8 relative), float32 sums over up to 256 terms.
  const double tolerance = c.bf16 ? 8e-3 : 2e-5;
  const bool pass = out_error <= tolerance && grad_error <= tolerance;
  std::printf("%-8s B=%d T=%-2d Hk=%-2d D=%-3d repeats=%d grad %-11s out %.1e grad_x %.1e  %s\n",
              c.bf16 ? "bfloat16" : "float32", B, T, Hk, D, R, c.heads_first_grad ? "heads-first" : "token-major",
              out_error, grad_error, pass ? "ok" : "FAIL");
  return pass;
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  bool pass = true;
  for (bool bf16 : {false, true})
    for (bool heads_first : {false, true})
      for (const auto& [batch, seq, key_heads, dim, repeats] :
           {std::array{2, 5, 3, 128, 2}, std::array{1, 7, 2, 1, 1}, std::array{1, 4, 1, 100, 3},
            std::array{2, 3, 4, 256, 4}, std::array{1, 9, 16, 32, 2}})
        pass &= run({batch, seq, key_heads, dim, repeats, bf16, heads_first}, rng);
  std::printf("%s (CPU emulation, l2_normalize_heads)\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
