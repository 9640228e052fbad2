// Standalone check of the fused chunked gated delta rule backward (kernels/gated_delta_chunk_
// backward*.cu), without LibTorch. First, on the CPU only: the float64 reference (the exact
// reverse mode of the token-by-token recurrence, written by hand) against finite differences, and
// the backward's chunk algebra (the kernels' formulas, in float64) against that reference. Then
// on the GPU: every gradient (dq, dk, dv, dg, dbeta, d_initial_state) of random inputs against
// the reference, and timings (cudaEvent, median of 20) of forward and backward, pass by pass, at
// B = 1, H = 32, D = 128, T = 4096 and 16384. One line per case, PASS or FAIL at the end (exit
// status 0 or 1; 3 when there is no GPU and only the CPU part ran). Build and run from the
// repository root (or bench/gdn_fused_checks.sh, which runs the forward's check too):
//   nvcc -std=c++20 -O3 -arch=sm_90 -I include -I kernels bench/gdn_fused_backward_check.cu \
//     kernels/gated_delta_chunk*.cu -o /tmp/gdn_bwd_check && timeout 300 /tmp/gdn_bwd_check
#include "gated_delta_chunk_backward.cuh"
#include "gdn_check_common.cuh"

namespace {

// d(sum(d_out o out) + sum(d_final o final_state)) by every input.
struct Gradients {
  std::vector<double> dq, dk, dv, dg, dbeta, d_initial;
};

// The loss's cotangents: d_out [B, T, H, Dv] rounded to bfloat16 (the kernels read it so), and
// d_final [segments, H, Dk, Dv] (empty for none).
struct Cotangents {
  std::vector<float> d_out, d_final;
};

Cotangents random_cotangents(const Inputs& in, bool final_state, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Cotangents c;
  c.d_out.resize(static_cast<size_t>(in.batch) * in.seq * in.heads * kDim);
  for (auto& x : c.d_out) x = bf16_round(normal(rng));
  const int segments = in.bounds.empty() ? in.batch : static_cast<int>(in.bounds.size()) - 1;
  if (final_state) {
    c.d_final.resize(static_cast<size_t>(segments) * in.heads * kDim * kDim);
    for (auto& x : c.d_final) x = 0.1f * normal(rng);
  }
  return c;
}

// Each (segment, head)'s tokens: row b, positions first .. last - 1.
struct Span {
  int b, first, last;
};

Span span_of(const Inputs& in, int segment) {
  if (in.bounds.empty()) return {segment, 0, in.seq};
  return {0, static_cast<int>(in.bounds[segment]), static_cast<int>(in.bounds[segment + 1])};
}

int segments_of(const Inputs& in) { return in.bounds.empty() ? in.batch : static_cast<int>(in.bounds.size()) - 1; }

// The recurrence token by token in float64 and its exact reverse mode, per token t (a = exp(g_t)):
//   S~ = a S;  p = S~^T k;  delta = beta (v - p);  S' = S~ + k delta^T;  o = S'^T q
// backwards, with dS the gradient of S':
//   dS += q do^T;  dq = S' do;  dk = dS delta;  d_delta = dS^T k;  dbeta = d_delta . (v - p);
//   dv = beta d_delta;  dp = -beta d_delta;  dk += S~ dp;  dS~ = dS + k dp^T;
//   dg = a sum(dS~ o S);  dS = a dS~.
// The states entering each token are kept on the way forward.
Gradients reference_gradients(const Inputs& in, const Cotangents& c) {
  const int H = in.heads, T = in.seq, D = kDim;
  const size_t tokens = static_cast<size_t>(in.batch) * T * H;
  Gradients r{std::vector<double>(tokens * D), std::vector<double>(tokens * D),
              std::vector<double>(tokens * D), std::vector<double>(tokens),
              std::vector<double>(tokens),     std::vector<double>(static_cast<size_t>(segments_of(in)) * H * D * D)};
  std::vector<double> S(D * D), decayed(D * D), dS(D * D), dDecayed(D * D), p(D), delta(D), dd(D), dp(D);
  std::vector<double> kept;
  for (int s = 0; s < segments_of(in); ++s)
    for (int h = 0; h < H; ++h) {
      const Span sp = span_of(in, s);
      const size_t state0 = (static_cast<size_t>(s) * H + h) * D * D;
      for (int e = 0; e < D * D; ++e) S[e] = in.initial.empty() ? 0.0 : in.initial[state0 + e];
      const auto token = [&](int t) { return (static_cast<size_t>(sp.b) * T + t) * H + h; };
      kept.assign(static_cast<size_t>(sp.last - sp.first) * D * D, 0.0);
      for (int t = sp.first; t < sp.last; ++t) {
        const size_t n = token(t);
        const float *k = &in.k[n * D], *v = &in.v[n * D];
        std::copy(S.begin(), S.end(), kept.begin() + static_cast<size_t>(t - sp.first) * D * D);
        const double a = std::exp(static_cast<double>(in.g[n])), beta = in.beta[n];
        for (auto& x : S) x *= a;
        std::fill(p.begin(), p.end(), 0.0);
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) p[j] += k[i] * S[i * D + j];
        for (int j = 0; j < D; ++j) delta[j] = beta * (v[j] - p[j]);
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) S[i * D + j] += k[i] * delta[j];
      }
      for (int e = 0; e < D * D; ++e) dS[e] = c.d_final.empty() ? 0.0 : c.d_final[state0 + e];
      for (int t = sp.last - 1; t >= sp.first; --t) {
        const size_t n = token(t);
        const float *q = &in.q[n * D], *k = &in.k[n * D], *v = &in.v[n * D], *d_out = &c.d_out[n * D];
        const double* before = &kept[static_cast<size_t>(t - sp.first) * D * D];
        const double a = std::exp(static_cast<double>(in.g[n])), beta = in.beta[n];
        for (int e = 0; e < D * D; ++e) decayed[e] = a * before[e];
        std::fill(p.begin(), p.end(), 0.0);
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) p[j] += k[i] * decayed[i * D + j];
        for (int j = 0; j < D; ++j) delta[j] = beta * (v[j] - p[j]);
        double* dq = &r.dq[n * D];
        double* dk = &r.dk[n * D];
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) {
            dS[i * D + j] += q[i] * d_out[j];
            dq[i] += (decayed[i * D + j] + k[i] * delta[j]) * d_out[j];
          }
        std::fill(dd.begin(), dd.end(), 0.0);
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) {
            dk[i] += dS[i * D + j] * delta[j];
            dd[j] += dS[i * D + j] * k[i];
          }
        double dbeta = 0;
        for (int j = 0; j < D; ++j) {
          dbeta += dd[j] * (v[j] - p[j]);
          r.dv[n * D + j] = beta * dd[j];
          dp[j] = -beta * dd[j];
        }
        r.dbeta[n] = dbeta;
        double da = 0;
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) {
            dk[i] += decayed[i * D + j] * dp[j];
            dDecayed[i * D + j] = dS[i * D + j] + k[i] * dp[j];
            da += dDecayed[i * D + j] * before[i * D + j];
          }
        r.dg[n] = a * da;
        for (int e = 0; e < D * D; ++e) dS[e] = a * dDecayed[e];
      }
      std::copy(dS.begin(), dS.end(), r.d_initial.begin() + state0);
    }
  return r;
}

// The loss sum(d_out o out) + sum(d_final o final_state) by the float64 recurrence.
double reference_loss(const Inputs& in, const Cotangents& c) {
  const int H = in.heads, T = in.seq, D = kDim;
  std::vector<double> S(D * D), p(D), delta(D);
  double loss = 0;
  for (int s = 0; s < segments_of(in); ++s)
    for (int h = 0; h < H; ++h) {
      const Span sp = span_of(in, s);
      const size_t state0 = (static_cast<size_t>(s) * H + h) * D * D;
      for (int e = 0; e < D * D; ++e) S[e] = in.initial.empty() ? 0.0 : in.initial[state0 + e];
      for (int t = sp.first; t < sp.last; ++t) {
        const size_t n = (static_cast<size_t>(sp.b) * T + t) * H + h;
        const float *q = &in.q[n * D], *k = &in.k[n * D], *v = &in.v[n * D];
        const double a = std::exp(static_cast<double>(in.g[n])), beta = in.beta[n];
        for (auto& x : S) x *= a;
        std::fill(p.begin(), p.end(), 0.0);
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) p[j] += k[i] * S[i * D + j];
        for (int j = 0; j < D; ++j) delta[j] = beta * (v[j] - p[j]);
        for (int i = 0; i < D; ++i)
          for (int j = 0; j < D; ++j) S[i * D + j] += k[i] * delta[j];
        for (int j = 0; j < D; ++j) {
          double o = 0;
          for (int i = 0; i < D; ++i) o += q[i] * S[i * D + j];
          loss += o * c.d_out[n * D + j];
        }
      }
      if (!c.d_final.empty())
        for (int e = 0; e < D * D; ++e) loss += S[e] * c.d_final[state0 + e];
    }
  return loss;
}

// The reference's gradients against central differences of reference_loss along a few random
// directions of each input (inputs held in float32, so steps of 1e-3 and agreement to 1e-5).
bool check_reference_by_finite_differences() {
  auto in = random_inputs(1, 70, 1, 0.5, 0.0, true, {}, 5u);
  const auto c = random_cotangents(in, true, 6u);
  const auto grads = reference_gradients(in, c);
  std::mt19937 rng(8u);
  std::normal_distribution<float> normal;
  bool pass = true;
  const auto probe = [&](const char* name, std::vector<float>& x, const std::vector<double>& dx) {
    const std::vector<float> saved = x;
    std::vector<float> up(x.size()), down(x.size());
    double expected = 0;  // the gradient along the perturbation as float32 actually applies it
    for (size_t i = 0; i < x.size(); ++i) {
      const float step = 1e-3f * normal(rng);
      up[i] = saved[i] + step;
      down[i] = saved[i] - step;
      expected += (static_cast<double>(up[i]) - down[i]) * dx[i];
    }
    x = up;
    const double loss_up = reference_loss(in, c);
    x = down;
    const double loss_down = reference_loss(in, c);
    x = saved;
    const double error = std::abs((loss_up - loss_down) - expected) / std::max(std::abs(expected), 1e-12);
    const bool ok = error < 1e-5;
    pass &= ok;
    std::printf("  reference vs finite differences, d%-8s rel err %.1e  %s\n", name, error, ok ? "ok" : "FAIL");
  };
  probe("q", in.q, grads.dq);
  probe("k", in.k, grads.dk);
  probe("v", in.v, grads.dv);
  probe("g", in.g, grads.dg);
  probe("beta", in.beta, grads.dbeta);
  probe("initial", in.initial, grads.d_initial);
  return pass;
}

// ---- The backward's chunk algebra in float64 (what the kernels compute, without rounding) ----

using Matrix = std::vector<double>;  // row-major

// a (m x k, or k x m when ta) times b (k x n, or n x k when tb).
Matrix mul(const Matrix& a, bool ta, const Matrix& b, bool tb, int m, int n, int k) {
  Matrix out(static_cast<size_t>(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int l = 0; l < k; ++l) {
      const double x = ta ? a[static_cast<size_t>(l) * m + i] : a[static_cast<size_t>(i) * k + l];
      if (x == 0.0) continue;
      for (int j = 0; j < n; ++j)
        out[static_cast<size_t>(i) * n + j] +=
            x * (tb ? b[static_cast<size_t>(j) * k + l] : b[static_cast<size_t>(l) * n + j]);
    }
  return out;
}

// What the backward's passes hand each other, for one row without documents: T [H, N, C, C],
// d_delta [H, N, C, Dv] and dH [H, N, Dk, Dv] (the gradient of the state leaving each chunk).
struct Intermediates {
  std::vector<double> inverse, d_delta, d_states;
};

Gradients chunked_gradients(const Inputs& in, const Cotangents& c, Intermediates* kept = nullptr) {
  const int H = in.heads, T = in.seq, D = kDim, C = gdn::kChunk;
  const int N = (T + C - 1) / C;
  if (kept != nullptr) {
    kept->inverse.assign(static_cast<size_t>(H) * N * C * C, 0.0);
    kept->d_delta.assign(static_cast<size_t>(H) * N * C * D, 0.0);
    kept->d_states.assign(static_cast<size_t>(H) * N * D * D, 0.0);
  }
  const size_t tokens = static_cast<size_t>(in.batch) * T * H;
  Gradients r{std::vector<double>(tokens * D), std::vector<double>(tokens * D),
              std::vector<double>(tokens * D), std::vector<double>(tokens),
              std::vector<double>(tokens),     std::vector<double>(static_cast<size_t>(segments_of(in)) * H * D * D)};
  struct Chunk {
    int first, length;
    std::vector<double> G, beta;
    Matrix q, k, v, d_out, T, W, to_end, delta, S, dH;
  };
  for (int s = 0; s < segments_of(in); ++s)
    for (int h = 0; h < H; ++h) {
      const Span sp = span_of(in, s);
      const auto token = [&](int t) { return (static_cast<size_t>(sp.b) * T + t) * H + h; };
      std::vector<Chunk> chunks;
      for (int first = sp.first; first < sp.last; first += C) {
        Chunk ch{first, std::min(C, sp.last - first), std::vector<double>(C), std::vector<double>(C)};
        for (auto* m : {&ch.q, &ch.k, &ch.v, &ch.d_out}) m->assign(static_cast<size_t>(C) * D, 0.0);
        double sum = 0;
        for (int i = 0; i < C; ++i) {
          const bool real = i < ch.length;
          const size_t n = token(first + i);
          sum += real ? in.g[n] : 0.0;
          ch.G[i] = sum;
          ch.beta[i] = real ? in.beta[n] : 0.0;
          for (int d = 0; real && d < D; ++d) {
            ch.q[i * D + d] = in.q[n * D + d];
            ch.k[i * D + d] = in.k[n * D + d];
            ch.v[i * D + d] = in.v[n * D + d];
            ch.d_out[i * D + d] = c.d_out[n * D + d];
          }
        }
        chunks.push_back(std::move(ch));
      }
      // Forward: T, W, to_end, the entering states and delta.
      Matrix S(static_cast<size_t>(D) * D, 0.0);
      const size_t state0 = (static_cast<size_t>(s) * H + h) * D * D;
      for (int e = 0; e < D * D && !in.initial.empty(); ++e) S[e] = in.initial[state0 + e];
      for (auto& ch : chunks) {
        const auto gram = mul(ch.k, false, ch.k, true, C, C, D);
        Matrix A(C * C, 0.0), Tm(C * C, 0.0), kb(C * D), vb(C * D);
        for (int i = 0; i < C; ++i)
          for (int j = 0; j < i; ++j) A[i * C + j] = ch.beta[i] * std::exp(ch.G[i] - ch.G[j]) * gram[i * C + j];
        for (int col = 0; col < C; ++col)
          for (int i = col; i < C; ++i) {
            double x = i == col ? 1.0 : 0.0;
            for (int j = col; j < i; ++j) x -= A[i * C + j] * Tm[j * C + col];
            Tm[i * C + col] = x;
          }
        ch.to_end.assign(C * D, 0.0);
        for (int i = 0; i < C; ++i)
          for (int d = 0; d < D; ++d) {
            kb[i * D + d] = ch.beta[i] * std::exp(ch.G[i]) * ch.k[i * D + d];
            vb[i * D + d] = ch.beta[i] * ch.v[i * D + d];
            ch.to_end[i * D + d] = std::exp(ch.G[C - 1] - ch.G[i]) * ch.k[i * D + d];
          }
        ch.T = Tm;
        ch.W = mul(Tm, false, kb, false, C, D, C);
        ch.S = S;
        const auto u = mul(Tm, false, vb, false, C, D, C);
        const auto ws = mul(ch.W, false, S, false, C, D, D);
        ch.delta.resize(C * D);
        for (int e = 0; e < C * D; ++e) ch.delta[e] = u[e] - ws[e];
        const auto write = mul(ch.to_end, true, ch.delta, false, D, D, C);
        for (int e = 0; e < D * D; ++e) S[e] = std::exp(ch.G[C - 1]) * S[e] + write[e];
      }
      // Reverse over the chunks: dv_local, d_delta, dH.
      Matrix dH(static_cast<size_t>(D) * D, 0.0);
      for (int e = 0; e < D * D && !c.d_final.empty(); ++e) dH[e] = c.d_final[state0 + e];
      std::vector<Matrix> d_delta(chunks.size());
      for (int n = static_cast<int>(chunks.size()) - 1; n >= 0; --n) {
        auto& ch = chunks[n];
        ch.dH = dH;
        auto scores = mul(ch.q, false, ch.k, true, C, C, D);
        for (int i = 0; i < C; ++i)
          for (int j = 0; j < C; ++j)
            scores[i * C + j] = j <= i ? scores[i * C + j] * std::exp(ch.G[i] - ch.G[j]) : 0.0;
        d_delta[n] = mul(scores, true, ch.d_out, false, C, D, C);
        const auto carried = mul(ch.to_end, false, dH, false, C, D, D);
        for (int e = 0; e < C * D; ++e) d_delta[n][e] += carried[e];
        Matrix qg(C * D);
        for (int i = 0; i < C; ++i)
          for (int d = 0; d < D; ++d) qg[i * D + d] = std::exp(ch.G[i]) * ch.q[i * D + d];
        const auto read = mul(qg, true, ch.d_out, false, D, D, C);
        const auto corrected = mul(ch.W, true, d_delta[n], false, D, D, C);
        for (int e = 0; e < D * D; ++e) dH[e] = std::exp(ch.G[C - 1]) * dH[e] + read[e] - corrected[e];
      }
      std::copy(dH.begin(), dH.end(), r.d_initial.begin() + state0);
      if (kept != nullptr && in.batch == 1 && in.bounds.empty())
        for (int n = 0; n < N; ++n) {
          const size_t chunk = static_cast<size_t>(h) * N + n;
          std::copy(chunks[n].T.begin(), chunks[n].T.end(), kept->inverse.begin() + chunk * C * C);
          std::copy(d_delta[n].begin(), d_delta[n].end(), kept->d_delta.begin() + chunk * C * D);
          std::copy(chunks[n].dH.begin(), chunks[n].dH.end(), kept->d_states.begin() + chunk * D * D);
        }
      // Per chunk: the gradients pass's formulas.
      for (size_t n = 0; n < chunks.size(); ++n) {
        const auto& ch = chunks[n];
        const auto& dd = d_delta[n];
        const double last = ch.G[C - 1];
        std::vector<double> dG(C, 0.0), dbeta(C, 0.0);
        double extra = 0;
        for (int e = 0; e < D * D; ++e) extra += std::exp(last) * ch.dH[e] * ch.S[e];
        auto dk = mul(ch.delta, false, ch.dH, true, C, D, D);
        for (int i = 0; i < C; ++i) {
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += (dk[i * D + d] *= std::exp(last - ch.G[i])) * ch.k[i * D + d];
          dG[i] -= dot;
          extra += dot;
        }
        auto dq = mul(ch.d_out, false, ch.S, true, C, D, D);
        for (int i = 0; i < C; ++i)
          for (int d = 0; d < D; ++d) dG[i] += (dq[i * D + d] *= std::exp(ch.G[i])) * ch.q[i * D + d];
        auto dW = mul(dd, false, ch.S, true, C, D, D);
        for (auto& x : dW) x = -x;
        const auto qk = mul(ch.q, false, ch.k, true, C, C, D);
        const auto dP = mul(ch.d_out, false, ch.delta, true, C, C, D);
        const auto gram = mul(ch.k, false, ch.k, true, C, C, D);
        Matrix X(C * C, 0.0);
        for (int i = 0; i < C; ++i)
          for (int j = 0; j <= i; ++j) {
            X[i * C + j] = dP[i * C + j] * std::exp(ch.G[i] - ch.G[j]);
            dG[i] += X[i * C + j] * qk[i * C + j];
            dG[j] -= X[i * C + j] * qk[i * C + j];
          }
        const auto xk = mul(X, false, ch.k, false, C, D, C), xq = mul(X, true, ch.q, false, C, D, C);
        for (int e = 0; e < C * D; ++e) dq[e] += xk[e], dk[e] += xq[e];
        const auto dv_t = mul(dd, false, ch.v, true, C, C, D), dw_t = mul(dW, false, ch.k, true, C, C, D);
        Matrix dT(C * C);
        for (int i = 0; i < C; ++i)
          for (int j = 0; j < C; ++j)
            dT[i * C + j] = ch.beta[j] * (dv_t[i * C + j] + std::exp(ch.G[j]) * dw_t[i * C + j]);
        const auto dA = mul(ch.T, true, mul(dT, false, ch.T, true, C, C, C), false, C, C, C);  // -dA
        Matrix Zs(C * C, 0.0);
        for (int i = 0; i < C; ++i)
          for (int j = 0; j < i; ++j) {
            const double decayed = -dA[i * C + j] * std::exp(ch.G[i] - ch.G[j]);
            const double z = ch.beta[i] * decayed;
            Zs[i * C + j] = Zs[j * C + i] = z;
            dG[i] += z * gram[i * C + j];
            dG[j] -= z * gram[i * C + j];
            dbeta[i] += decayed * gram[i * C + j];
          }
        const auto zk = mul(Zs, false, ch.k, false, C, D, C);
        for (int e = 0; e < C * D; ++e) dk[e] += zk[e];
        const auto dvb = mul(ch.T, true, dd, false, C, D, C), dkb = mul(ch.T, true, dW, false, C, D, C);
        for (int i = 0; i < C; ++i) {
          double dot_v = 0, dot_k = 0;
          for (int d = 0; d < D; ++d)
            dot_v += dvb[i * D + d] * ch.v[i * D + d], dot_k += dkb[i * D + d] * ch.k[i * D + d];
          const double gamma = std::exp(ch.G[i]);
          dbeta[i] += dot_v + gamma * dot_k;
          dG[i] += ch.beta[i] * gamma * dot_k;
          for (int d = 0; d < D; ++d) dk[i * D + d] += ch.beta[i] * gamma * dkb[i * D + d];
        }
        dG[C - 1] += extra;
        double suffix = 0;
        for (int i = C - 1; i >= 0; --i) {
          suffix += dG[i];
          if (i >= ch.length) continue;
          const size_t t = token(ch.first + i);
          r.dg[t] = suffix;
          r.dbeta[t] = dbeta[i];
          for (int d = 0; d < D; ++d) {
            r.dq[t * D + d] = dq[i * D + d];
            r.dk[t * D + d] = dk[i * D + d];
            r.dv[t * D + d] = ch.beta[i] * dvb[i * D + d];
          }
        }
      }
    }
  return r;
}

// Relative errors of every gradient; prints one line, returns whether all are within tolerance.
bool compare(const char* name, const Inputs& in, const Gradients& got, const Gradients& want, bool initial,
             double tolerance) {
  const double errors[6] = {
      relative_error(got.dq, want.dq),       relative_error(got.dk, want.dk),
      relative_error(got.dv, want.dv),       relative_error(got.dg, want.dg),
      relative_error(got.dbeta, want.dbeta), initial ? relative_error(got.d_initial, want.d_initial) : 0.0};
  bool pass = true;
  for (double e : errors) pass &= e <= tolerance;
  char initial_error[16] = "-";
  if (initial) std::snprintf(initial_error, sizeof initial_error, "%.1e", errors[5]);
  std::printf("%-40s B=%d T=%-5d H=%d  dq %.1e dk %.1e dv %.1e dg %.1e dbeta %.1e dh0 %s  %s\n", name, in.batch, in.seq,
              in.heads, errors[0], errors[1], errors[2], errors[3], errors[4], initial_error, pass ? "ok" : "FAIL");
  return pass;
}

// ---- The kernels ----

// Device buffers of one backward beside DeviceRun's forward arguments.
struct BackwardRun {
  DeviceRun forward;
  launch::GatedDeltaChunkBackward args{};

  BackwardRun(const Inputs& in, const Cotangents& c, bool float_qk) : forward(in, float_qk) {
    const int64_t B = in.batch, T = in.seq, H = in.heads, tokens = B * T * H;
    const auto& f = forward.args;
    args.forward = f;  // the forward's workspace: recomputed into, or kept from a forward run
    args.recompute = true;
    args.workspace = forward.keep(
        DeviceRun::alloc(launch::gated_delta_chunk_backward_workspace_bytes(B, H, f.chunks, f.segments, kDim, kDim)));
    args.d_out = forward.keep(to_device(to_bf16(c.d_out)));
    args.d_out_strides = {T * H * kDim, H * kDim, kDim};
    args.d_final_state = c.d_final.empty() ? nullptr : static_cast<const float*>(forward.keep(to_device(c.d_final)));
    const int64_t qk_size = float_qk ? 4 : 2;
    args.dq = forward.keep(DeviceRun::alloc(tokens * kDim * qk_size));
    args.dk = forward.keep(DeviceRun::alloc(tokens * kDim * qk_size));
    args.dv = forward.keep(DeviceRun::alloc(tokens * kDim * 2));
    args.dg = static_cast<float*>(forward.keep(DeviceRun::alloc(tokens * 4)));
    args.dbeta = static_cast<float*>(forward.keep(DeviceRun::alloc(tokens * 4)));
    args.d_initial_state = in.initial.empty()
                               ? nullptr
                               : static_cast<float*>(forward.keep(DeviceRun::alloc(f.segments * H * kDim * kDim * 4)));
  }

  Gradients fetch_gradients(const Inputs& in, bool float_qk) const {
    const size_t tokens = static_cast<size_t>(in.batch) * in.seq * in.heads;
    const auto qk = [&](const void* p) {
      return float_qk ? fetch(static_cast<const float*>(p), tokens * kDim)
                      : fetch(static_cast<const __nv_bfloat16*>(p), tokens * kDim);
    };
    Gradients g{qk(args.dq),
                qk(args.dk),
                fetch(static_cast<const __nv_bfloat16*>(args.dv), tokens * kDim),
                fetch(args.dg, tokens),
                fetch(args.dbeta, tokens),
                {}};
    if (args.d_initial_state != nullptr)
      g.d_initial = fetch(args.d_initial_state, static_cast<size_t>(args.forward.segments) * in.heads * kDim * kDim);
    return g;
  }
};

// The kernels round q, k, v, dO, T, W, delta, the states S and dH, d_delta and the square
// matrices of the gradients pass (X, dT, dT T^T, Z) to bfloat16 (relative 2^-9 ~ 2e-3 each) and
// accumulate in float32; chained through a few products these stay well under 1e-2 relative
// (Frobenius), while a wrong index, sign or formula is off by O(1). The same 2e-2 as the forward.
constexpr double kGradientTolerance = 2e-2;

// kept: the forward runs first and the backward reads its arrays (recompute false).
// key_heads > 0: q and k shared by groups of heads / key_heads value heads (dq and dk stay per value
// head, as the reference's).
bool check_case(const char* name, int batch, int seq, int heads, double gate_scale, double beta_shift, bool initial,
                bool float_qk, std::vector<int64_t> bounds = {}, bool kept = false, int key_heads = 0) {
  const auto drawn = random_inputs(batch, seq, heads, gate_scale, beta_shift, initial, bounds, 4321u + seq);
  const auto in = key_heads > 0 ? sharing_key_heads(drawn, key_heads) : drawn;
  const auto c = random_cotangents(in, initial, 77u + seq);
  const auto want = reference_gradients(in, c);
  BackwardRun run(in, c, float_qk);
  if (kept) {
    run.forward.args.keep_for_backward = true;
    launch::gated_delta_chunk_forward(run.forward.args, nullptr);
    run.args.recompute = false;
  }
  launch::gated_delta_chunk_backward(run.args, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  return compare(name, in, run.fetch_gradients(in, float_qk), want, initial, kGradientTolerance);
}

// Each backward pass's hand-over arrays against the chunk algebra's (one row, no documents), so
// that a failure of the gradients points at the pass that went wrong.
bool check_passes() {
  const auto in = random_inputs(1, 150, 2, 0.5, 0.0, true, {}, 99u);
  const auto c = random_cotangents(in, true, 98u);
  Intermediates want;
  chunked_gradients(in, c, &want);
  BackwardRun run(in, c, false);
  const auto p = gdn::backward_problem_of(run.args);
  gdn::launch_prepare(p.forward, nullptr);
  gdn::launch_states(p.forward, nullptr);
  gdn::launch_backward_local(p, nullptr);
  gdn::launch_backward_states(p, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  bool pass = true;
  const auto report = [&](const char* what, const std::vector<double>& got, const std::vector<double>& expected) {
    const double error = relative_error(got, expected);
    pass &= error <= kGradientTolerance;
    std::printf("  pass check %-34s rel err %.2e  %s\n", what, error, error <= kGradientTolerance ? "ok" : "FAIL");
  };
  report("prepare: T (kept for the backward)", fetch(p.forward.inverse, want.inverse.size()), want.inverse);
  report("local + reverse states: d_delta", fetch(p.d_delta, want.d_delta.size()), want.d_delta);
  report("reverse states: dH per chunk", fetch(p.d_states, want.d_states.size()), want.d_states);
  return pass;
}

// key_heads: 32 (one a value head) or Qwen3-Next's 16.
void time_training(int seq, int key_heads) {
  const auto in = sharing_key_heads(random_inputs(1, seq, 32, 0.5, 0.0, false, {}, 7u), key_heads);
  const auto c = random_cotangents(in, false, 8u);
  BackwardRun run(in, c, false);
  auto forward_args = run.forward.args;
  forward_args.keep_for_backward = true;
  const auto problem = gdn::backward_problem_of(run.args);
  const double forward = median_ms([&] { launch::gated_delta_chunk_forward(forward_args, nullptr); });
  const double backward = median_ms([&] { launch::gated_delta_chunk_backward(run.args, nullptr); });
  launch::gated_delta_chunk_forward(forward_args, nullptr);
  auto kept_args = run.args;
  kept_args.recompute = false;
  const double backward_kept = median_ms([&] { launch::gated_delta_chunk_backward(kept_args, nullptr); });
  const double prepare = median_ms([&] { gdn::launch_prepare(problem.forward, nullptr); });
  const double states = median_ms([&] { gdn::launch_states(problem.forward, nullptr); });
  const double local = median_ms([&] { gdn::launch_backward_local(problem, nullptr); });
  const double reverse = median_ms([&] { gdn::launch_backward_states(problem, nullptr); });
  const double gradients = median_ms([&] { gdn::launch_backward_gradients(problem, nullptr); });
  CHECK_CUDA(cudaDeviceSynchronize());
  std::printf(
      "time B=1 T=%-5d H=32 Hk=%-2d D=128 bf16: forward %.3f ms; backward recomputing the forward's arrays %.3f ms "
      "(fwd+bwd %.3f ms), backward reading them kept %.3f ms (fwd+bwd %.3f ms)\n",
      seq, key_heads, forward, backward, forward + backward, backward_kept, forward + backward_kept);
  std::printf(
      "  backward passes: recompute prepare %.3f, recompute states %.3f, local %.3f, reverse states %.3f, "
      "gradients %.3f ms\n",
      prepare, states, local, reverse, gradients);
}

}  // namespace

// --time-only: the timings alone (to compare builds of the kernels quickly), no checks.
int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--time-only") {
    for (int seq : {4096, 16384})
      for (int key_heads : {32, 16}) time_training(seq, key_heads);
    return 0;
  }
  std::printf("-- CPU: the float64 reference and the chunk algebra\n");
  bool pass = check_reference_by_finite_differences();
  {
    const auto in = random_inputs(2, 150, 2, 0.5, 0.0, true, {}, 11u);
    const auto c = random_cotangents(in, true, 12u);
    pass &= compare("chunk algebra (float64) vs reference", in, chunked_gradients(in, c), reference_gradients(in, c),
                    true, 1e-9);
    const auto packed = random_inputs(1, 300, 1, 2.0, -1.0, true, {0, 1, 65, 200, 300}, 13u);
    const auto cp = random_cotangents(packed, true, 14u);
    pass &= compare("chunk algebra, packed, strong gates", packed, chunked_gradients(packed, cp),
                    reference_gradients(packed, cp), true, 1e-9);
  }
  std::fflush(stdout);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: the kernels were not run\n%s\n", pass ? "CPU PART PASS, KERNELS NOT RUN" : "FAIL");
    return pass ? 3 : 1;
  }
  std::printf("-- GPU: the kernels' gradients against the float64 reference (tolerance %.0e)\n", kGradientTolerance);
  pass &= check_passes();
  for (int seq : {1, 63, 64, 65, 200, 1000})
    pass &= check_case("mixed gates, initial state", 2, seq, 3, 0.5, 0.0, true, false);
  pass &= check_case("mixed gates, no initial state", 2, 200, 3, 0.5, 0.0, false, false);
  pass &= check_case("gates near 1 (g ~ -1e-4), beta near 1", 2, 200, 3, 1e-4, 4.0, true, false);
  pass &= check_case("strong decay (g ~ -5), beta near 0", 2, 200, 3, 5.0, -4.0, true, false);
  pass &= check_case("q and k float32", 2, 130, 2, 0.5, 0.0, true, true);
  pass &= check_case("packed documents", 1, 500, 2, 0.5, 0.0, true, false, {0, 1, 65, 200, 263, 500});
  pass &= check_case("packed documents, no initial state", 1, 300, 2, 0.1, 1.0, false, false, {0, 128, 129, 300});
  pass &= check_case("the forward's arrays kept", 2, 200, 3, 0.5, 0.0, true, false, {}, true);
  pass &= check_case("the forward's arrays kept, packed", 1, 300, 2, 0.5, 0.0, true, false, {0, 100, 300}, true);
  pass &= check_case("two value heads a key head", 2, 200, 6, 0.5, 0.0, true, false, {}, false, 3);
  pass &= check_case("four value heads a key head, q and k float32", 1, 130, 4, 0.5, 0.0, false, true, {}, true, 1);
  std::printf("%s\n", pass ? "PASS" : "FAIL");
  std::fflush(stdout);
  for (int seq : {4096, 16384})
    for (int key_heads : {32, 16}) time_training(seq, key_heads);
  std::printf("%s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
