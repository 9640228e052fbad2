// The mHC post and res maps kernels (kernels/hc_maps.cu) on the CPU emulation (emulation.h), against
// a float64 twin written out here: the maps by hand, every gradient (f, base, scale) by central
// differences of the float64 loss sum(post * g_post) + sum(res * g_res). Also: the backward twice
// gives the same bits, and f's pre columns, base's pre entries and scale[0] get exact zeros.
// Every n class (1, powers of two, idle lanes), token counts that fill no block, 1 to 150
// iterations (the Sinkhorn tape in shared memory and in the global scratch), either gradient
// alone, none, no tokens. Prints PASS or FAIL. Run by hc_run.sh.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "strata/kernels/hc_maps_launch.h"

using namespace strata::kernels::launch;

struct Case {
  int n, tokens, iters;
  bool post_grad, res_grad;
  double eps;
};

// The float64 loss sum(post * gp) + sum(res * gr) for one token (post and res written out).
double token_loss(const double* f, const double* base, const double* scale, int n, int iters, double eps,
                  const double* gp_all, const double* gr_all, int t, double* post, double* res) {
  const double* gp = gp_all ? gp_all + t * n : nullptr;
  const double* gr = gr_all ? gr_all + t * n * n : nullptr;
  double loss = 0;
  for (int i = 0; i < n; ++i) {
    double z = scale[1] * f[n + i] + base[n + i];
    post[i] = 2.0 / (1.0 + std::exp(-z));
    if (gp) loss += post[i] * gp[i];
  }
  std::vector<double> m(n * n);
  for (int r = 0; r < n; ++r) {
    double peak = -1e300;
    std::vector<double> l(n);
    for (int c = 0; c < n; ++c) {
      l[c] = scale[2] * f[2 * n + r * n + c] + base[2 * n + r * n + c];
      peak = std::max(peak, l[c]);
    }
    double sum = 0;
    for (int c = 0; c < n; ++c) sum += (m[r * n + c] = std::exp(l[c] - peak));
    for (int c = 0; c < n; ++c) m[r * n + c] = m[r * n + c] / sum + eps;
  }
  auto cols = [&] {
    for (int c = 0; c < n; ++c) {
      double s = 0;
      for (int r = 0; r < n; ++r) s += m[r * n + c];
      for (int r = 0; r < n; ++r) m[r * n + c] /= s + eps;
    }
  };
  auto rows = [&] {
    for (int r = 0; r < n; ++r) {
      double s = 0;
      for (int c = 0; c < n; ++c) s += m[r * n + c];
      for (int c = 0; c < n; ++c) m[r * n + c] /= s + eps;
    }
  };
  cols();
  for (int i = 1; i < iters; ++i) {
    rows();
    cols();
  }
  for (int i = 0; i < n * n; ++i) {
    res[i] = m[i];
    if (gr) loss += m[i] * gr[i];
  }
  return loss;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// max |got - want| / max |want|
double rel(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0;
  for (size_t i = 0; i < got.size(); ++i) e = std::max(e, std::abs(got[i] - want[i]));
  const double s = max_abs(want);
  return s > 0 ? e / s : e;
}

bool check(const Case& k, unsigned seed) {
  const int n = k.n, T = k.tokens, M = n * (n + 2);
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> f(T * M), base(M), scale(3), gp(T * n), gr(T * n * n);
  for (auto& x : f) x = normal(gen);
  for (auto& x : base) x = 0.5f * normal(gen);
  for (auto& x : scale) x = 1.0f + normal(gen);
  for (auto& x : gp) x = normal(gen);
  for (auto& x : gr) x = normal(gen);
  std::vector<double> fd(f.begin(), f.end()), bd(base.begin(), base.end()), sd(scale.begin(), scale.end()),
      gpd(gp.begin(), gp.end()), grd(gr.begin(), gr.end());

  // The kernels.
  std::vector<float> post(T * n), res(T * n * n), grad_f(T * M, NAN), grad_base(M, NAN), grad_scale(3, NAN);
  std::vector<float> workspace(hc_post_res_workspace_floats(T, n, k.iters));
  hc_post_res_forward(f.data(), base.data(), scale.data(), post.data(), res.data(), T, n, k.iters, k.eps, nullptr);
  const float* gpp = k.post_grad ? gp.data() : nullptr;
  const float* grp = k.res_grad ? gr.data() : nullptr;
  hc_post_res_backward(f.data(), base.data(), scale.data(), gpp, grp, grad_f.data(), grad_base.data(),
                       grad_scale.data(), workspace.data(), T, n, k.iters, k.eps, nullptr);
  std::vector<float> grad_f2(T * M), grad_base2(M), grad_scale2(3);
  hc_post_res_backward(f.data(), base.data(), scale.data(), gpp, grp, grad_f2.data(), grad_base2.data(),
                       grad_scale2.data(), workspace.data(), T, n, k.iters, k.eps, nullptr);
  const bool same_bits = std::memcmp(grad_f.data(), grad_f2.data(), 4 * grad_f.size()) == 0 &&
                         std::memcmp(grad_base.data(), grad_base2.data(), 4 * M) == 0 &&
                         std::memcmp(grad_scale.data(), grad_scale2.data(), 12) == 0;

  // The float64 twin and its central differences.
  const double* gpq = k.post_grad ? gpd.data() : nullptr;
  const double* grq = k.res_grad ? grd.data() : nullptr;
  std::vector<double> post_ref(T * n), res_ref(T * n * n), tmp_post(n), tmp_res(n * n);
  for (int t = 0; t < T; ++t)
    token_loss(&fd[t * M], bd.data(), sd.data(), n, k.iters, k.eps, gpq, grq, t, &post_ref[t * n], &res_ref[t * n * n]);
  auto total = [&] {
    double L = 0;
    for (int t = 0; t < T; ++t)
      L +=
          token_loss(&fd[t * M], bd.data(), sd.data(), n, k.iters, k.eps, gpq, grq, t, tmp_post.data(), tmp_res.data());
    return L;
  };
  const double h = 1e-5;
  std::vector<double> gf_ref(T * M), gb_ref(M), gs_ref(3);
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < M; ++j) {
      double* x = &fd[t * M + j];
      const double x0 = *x;
      *x = x0 + h;
      double up =
          token_loss(&fd[t * M], bd.data(), sd.data(), n, k.iters, k.eps, gpq, grq, t, tmp_post.data(), tmp_res.data());
      *x = x0 - h;
      double down =
          token_loss(&fd[t * M], bd.data(), sd.data(), n, k.iters, k.eps, gpq, grq, t, tmp_post.data(), tmp_res.data());
      *x = x0;
      gf_ref[t * M + j] = (up - down) / (2 * h);
    }
  auto diff = [&](double* x) {
    const double x0 = *x;
    *x = x0 + h;
    double up = total();
    *x = x0 - h;
    double down = total();
    *x = x0;
    return (up - down) / (2 * h);
  };
  for (int j = 0; j < M; ++j) gb_ref[j] = diff(&bd[j]);
  for (int j = 0; j < 3; ++j) gs_ref[j] = diff(&sd[j]);

  const double e_post = rel(post, post_ref), e_res = rel(res, res_ref), e_f = rel(grad_f, gf_ref),
               e_base = rel(grad_base, gb_ref), e_scale = rel(grad_scale, gs_ref);
  bool exact_zeros = grad_scale[0] == 0.0f;
  for (int i = 0; i < n; ++i) exact_zeros &= grad_base[i] == 0.0f;
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < n; ++i) exact_zeros &= grad_f[t * M + i] == 0.0f;
  const bool pass =
      e_post <= 1e-6 && e_res <= 1e-5 && e_f <= 1e-4 && e_base <= 1e-4 && e_scale <= 1e-4 && same_bits && exact_zeros;
  std::printf(
      "%s n %d tokens %d iters %d eps %g d_post %d d_res %d: post %.2e res %.2e | d f %.2e d base %.2e d scale %.2e"
      " | same bits %d zeros %d\n",
      pass ? "ok  " : "FAIL", n, T, k.iters, k.eps, k.post_grad, k.res_grad, e_post, e_res, e_f, e_base, e_scale,
      same_bits, exact_zeros);
  return pass;
}

int main() {
  bool pass = true;
  unsigned seed = 1;
  for (int n : {1, 2, 3, 4, 5, 8})
    for (int tokens : {1, 37})
      for (int iters : {1, 3, 20}) pass &= check({n, tokens, iters, true, true, 1e-6}, seed++);
  for (int n : {3, 8}) {
    pass &= check({n, 45, 20, true, false, 1e-6}, seed++);
    pass &= check({n, 45, 20, false, true, 1e-6}, seed++);
    pass &= check({n, 45, 20, false, false, 1e-6}, seed++);
  }
  pass &= check({4, 70, 20, true, true, 1e-6}, seed++);                        // three blocks
  for (int n : {4, 8}) pass &= check({n, 20, 150, true, true, 1e-6}, seed++);  // the global tape
  pass &= check({4, 0, 20, true, true, 1e-6}, seed++);
  pass &= check({3, 37, 20, true, true, 0.0}, seed++);  // eps = 0, which the twin takes too
  std::printf("%s (hc_maps on the CPU emulation)\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
