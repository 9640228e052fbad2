// Standalone check of the fused chunked gated delta rule forward (kernels/gated_delta_chunk_*.cu),
// without LibTorch: random inputs, the kernels against a float64 CPU run of the recurrence token
// by token, then timings (cudaEvent, median of 20) at Qwen3-Next's shapes. Prints one line per
// case and PASS or FAIL at the end. Build and run from the repository root:
//   nvcc -std=c++20 -O3 -arch=sm_90 -I include -I kernels bench/gdn_fused_check.cu \
//     kernels/gated_delta_chunk_*.cu -o /tmp/gdn_fused_check && /tmp/gdn_fused_check
#include "gdn_check_common.cuh"

namespace {

struct Result {
  std::vector<double> out, final_state;
};

// The recurrence token by token in float64, restarting at each document.
Result reference(const Inputs& in) {
  const int H = in.heads, T = in.seq;
  std::vector<int64_t> bounds = in.bounds;
  const int segments = bounds.empty() ? in.batch : static_cast<int>(bounds.size()) - 1;
  Result r{std::vector<double>(static_cast<size_t>(in.batch) * T * H * kDim),
           std::vector<double>(static_cast<size_t>(segments) * H * kDim * kDim)};
  std::vector<double> S(kDim * kDim), kS(kDim), delta(kDim);
  for (int s = 0; s < segments; ++s)
    for (int h = 0; h < H; ++h) {
      const int b = bounds.empty() ? s : 0;
      const int first = bounds.empty() ? 0 : static_cast<int>(bounds[s]);
      const int last = bounds.empty() ? T : static_cast<int>(bounds[s + 1]);
      for (int e = 0; e < kDim * kDim; ++e)
        S[e] = in.initial.empty() ? 0.0 : in.initial[(static_cast<size_t>(s) * H + h) * kDim * kDim + e];
      for (int t = first; t < last; ++t) {
        const size_t token = (static_cast<size_t>(b) * T + t) * H + h;
        const float *q = &in.q[token * kDim], *k = &in.k[token * kDim], *v = &in.v[token * kDim];
        const double decay = std::exp(static_cast<double>(in.g[token])), beta = in.beta[token];
        for (auto& x : S) x *= decay;
        std::fill(kS.begin(), kS.end(), 0.0);
        for (int i = 0; i < kDim; ++i)
          for (int j = 0; j < kDim; ++j) kS[j] += k[i] * S[i * kDim + j];
        for (int j = 0; j < kDim; ++j) delta[j] = beta * (v[j] - kS[j]);
        for (int i = 0; i < kDim; ++i)
          for (int j = 0; j < kDim; ++j) S[i * kDim + j] += k[i] * delta[j];
        for (int j = 0; j < kDim; ++j) {
          double o = 0;
          for (int i = 0; i < kDim; ++i) o += q[i] * S[i * kDim + j];
          r.out[token * kDim + j] = o;
        }
      }
      std::copy(S.begin(), S.end(), r.final_state.begin() + (static_cast<size_t>(s) * H + h) * kDim * kDim);
    }
  return r;
}

// key_heads > 0: q and k shared by groups of heads / key_heads value heads.
bool check_case(const char* name, int batch, int seq, int heads, double gate_scale, double beta_shift, bool initial,
                bool float_qk, std::vector<int64_t> bounds = {}, int key_heads = 0) {
  const auto drawn = random_inputs(batch, seq, heads, gate_scale, beta_shift, initial, bounds, 1234u + seq);
  const auto in = key_heads > 0 ? sharing_key_heads(drawn, key_heads) : drawn;
  const auto ref = reference(in);
  DeviceRun run(in, float_qk);
  launch::gated_delta_chunk_forward(run.args, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<__nv_bfloat16> out(ref.out.size());
  std::vector<float> final_state(ref.final_state.size());
  CHECK_CUDA(cudaMemcpy(out.data(), run.args.out, out.size() * 2, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(final_state.data(), run.args.final_state, final_state.size() * 4, cudaMemcpyDeviceToHost));
  std::vector<double> got_out(out.size()), got_state(final_state.begin(), final_state.end());
  for (size_t i = 0; i < out.size(); ++i) got_out[i] = __bfloat162float(out[i]);
  const double out_error = relative_error(got_out, ref.out), state_error = relative_error(got_state, ref.final_state);
  const bool pass = out_error <= kTolerance && state_error <= kTolerance;
  std::printf("%-44s B=%d T=%-5d H=%d  out rel err %.2e  final state rel err %.2e  %s\n", name, batch, seq, heads,
              out_error, state_error, pass ? "ok" : "FAIL");
  return pass;
}

// Each pass on its own against float64 versions of the arrays it should hand over (one row, no
// documents), so that a failure above points at the pass that went wrong.
bool check_passes(const Inputs& in) {
  const int T = in.seq, H = in.heads, N = (T + gdn::kChunk - 1) / gdn::kChunk, C = gdn::kChunk;
  DeviceRun run(in, false);
  run.args.keep_for_backward = true;
  const auto p = gdn::problem_of(run.args);
  const size_t steps = static_cast<size_t>(H) * N * C;
  // float64 expectations, [H, N, C, ...] and [H, N, Dk, Dv].
  std::vector<double> gates(steps), w(steps * kDim), u(steps * kDim), delta(steps * kDim),
      states(static_cast<size_t>(H) * N * kDim * kDim);
  for (int h = 0; h < H; ++h) {
    std::vector<double> S(kDim * kDim);
    for (int e = 0; e < kDim * kDim; ++e)
      S[e] = in.initial.empty() ? 0.0 : in.initial[static_cast<size_t>(h) * kDim * kDim + e];
    for (int c = 0; c < N; ++c) {
      const size_t base = (static_cast<size_t>(h) * N + c) * C;
      auto token = [&](int i) { return (static_cast<size_t>(c) * C + i) * H + h; };
      auto real = [&](int i) { return c * C + i < T; };
      std::vector<double> G(C), beta(C), A(C * C), Tm(C * C);
      double sum = 0;
      for (int i = 0; i < C; ++i) {
        sum += real(i) ? in.g[token(i)] : 0.0;
        G[i] = gates[base + i] = sum;
        beta[i] = real(i) ? in.beta[token(i)] : 0.0;
      }
      auto key = [&](int i, int d) { return real(i) ? static_cast<double>(in.k[token(i) * kDim + d]) : 0.0; };
      auto value = [&](int i, int d) { return real(i) ? static_cast<double>(in.v[token(i) * kDim + d]) : 0.0; };
      for (int i = 0; i < C; ++i)
        for (int j = 0; j < i; ++j) {
          double dot = 0;
          for (int d = 0; d < kDim; ++d) dot += key(i, d) * key(j, d);
          A[i * C + j] = beta[i] * std::exp(G[i] - G[j]) * dot;
        }
      for (int col = 0; col < C; ++col)
        for (int i = 0; i < C; ++i) {
          double x = i == col ? 1.0 : 0.0;
          for (int j = col; j < i; ++j) x -= A[i * C + j] * Tm[j * C + col];
          Tm[i * C + col] = i < col ? 0.0 : x;
        }
      for (int i = 0; i < C; ++i)
        for (int d = 0; d < kDim; ++d) {
          double wi = 0, ui = 0;
          for (int j = 0; j <= i; ++j) {
            wi += Tm[i * C + j] * beta[j] * std::exp(G[j]) * key(j, d);
            ui += Tm[i * C + j] * beta[j] * value(j, d);
          }
          w[(base + i) * kDim + d] = wi;
          u[(base + i) * kDim + d] = ui;
        }
      std::copy(S.begin(), S.end(), states.begin() + (static_cast<size_t>(h) * N + c) * kDim * kDim);
      for (int i = 0; i < C; ++i)
        for (int d = 0; d < kDim; ++d) {
          double ws = 0;
          for (int m = 0; m < kDim; ++m) ws += w[(base + i) * kDim + m] * S[m * kDim + d];
          delta[(base + i) * kDim + d] = u[(base + i) * kDim + d] - ws;
        }
      for (auto& x : S) x *= std::exp(G[C - 1]);
      for (int i = 0; i < C; ++i) {
        const double to_end = std::exp(G[C - 1] - G[i]);
        for (int m = 0; m < kDim; ++m)
          for (int d = 0; d < kDim; ++d) S[m * kDim + d] += key(i, m) * to_end * delta[(base + i) * kDim + d];
      }
    }
  }
  bool pass = true;
  auto report = [&](const char* what, const std::vector<double>& got, const std::vector<double>& want) {
    const double error = relative_error(got, want);
    pass &= error <= kTolerance;
    std::printf("  pass check %-28s rel err %.2e  %s\n", what, error, error <= kTolerance ? "ok" : "FAIL");
  };
  gdn::launch_prepare(p, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  report("prepare: cumulative gates", fetch(p.gates, steps), gates);
  report("prepare: W", fetch(p.w, steps * kDim), w);
  report("prepare: U", fetch(p.u, steps * kDim), u);
  gdn::launch_states(p, nullptr);
  CHECK_CUDA(cudaDeviceSynchronize());
  report("states: entering states", fetch(p.states, states.size()), states);
  report("states: corrections", fetch(p.u, steps * kDim), delta);
  return pass;
}

void time_forward(const Inputs& in, bool float_qk) {
  const int seq = in.seq;
  DeviceRun run(in, float_qk);
  const auto problem = gdn::problem_of(run.args);
  const double total = median_ms([&] { launch::gated_delta_chunk_forward(run.args, nullptr); });
  const double prepare = median_ms([&] { gdn::launch_prepare(problem, nullptr); });
  const double states = median_ms([&] { gdn::launch_states(problem, nullptr); });
  const double output = median_ms([&] { gdn::launch_output(problem, nullptr); });
  run.args.keep_for_backward = true;
  const double kept = median_ms([&] { launch::gated_delta_chunk_forward(run.args, nullptr); });
  CHECK_CUDA(cudaGetLastError());
  std::printf(
      "time B=1 T=%-5d H=32 Hk=%-2d D=128 q,k %s: forward %.3f ms (prepare %.3f, states %.3f, output %.3f), %.3f "
      "keeping what the backward reads\n",
      seq, in.key_heads, float_qk ? "float32" : "bf16", total, prepare, states, output, kept);
}

// Every check case; true when all pass.
bool run_checks() {
  bool pass = check_passes(random_inputs(1, 150, 2, 0.5, 0.0, true, {}, 99u));
  for (int seq : {1, 63, 64, 65, 200, 1000})
    pass &= check_case("mixed gates, initial state", 2, seq, 3, 0.5, 0.0, true, false);
  pass &= check_case("gates near 1 (g ~ -1e-4), beta near 1", 2, 300, 2, 1e-4, 4.0, true, false);
  pass &= check_case("strong decay (g ~ -5), beta near 0", 2, 300, 2, 5.0, -4.0, true, false);
  pass &= check_case("no initial state, q and k float32", 2, 200, 2, 0.5, 0.0, false, true);
  pass &= check_case("packed documents", 1, 500, 2, 0.5, 0.0, true, false, {0, 1, 65, 200, 263, 500});
  pass &= check_case("packed documents, no initial state", 1, 300, 2, 0.1, 1.0, false, false, {0, 128, 129, 300});
  pass &= check_case("two value heads a key head", 2, 200, 6, 0.5, 0.0, true, false, {}, 3);
  pass &= check_case("four value heads a key head, q and k float32", 1, 130, 4, 0.5, 0.0, false, true, {}, 1);
  pass &= check_case("two value heads a key head, packed", 1, 300, 4, 0.5, 0.0, true, false, {0, 70, 300}, 2);
  return pass;
}

}  // namespace

// --time-only: the timings alone (to compare builds of the kernels quickly), no checks; --long:
// the timing at T = 65536 with 16 key heads alone (its inputs take ~20 s to draw).
int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--long") {
    time_forward(sharing_key_heads(random_inputs(1, 65536, 32, 0.5, 0.0, false, {}, 7u), 16), false);
    return 0;
  }
  const bool time_only = argc > 1 && std::string(argv[1]) == "--time-only";
  const bool pass = time_only || run_checks();
  for (int seq : {4096, 16384}) {
    const auto in = random_inputs(1, seq, 32, 0.5, 0.0, false, {}, 7u);
    time_forward(in, false);
    time_forward(in, true);
    time_forward(sharing_key_heads(in, 16), false);  // Qwen3-Next's 16 key heads
  }
  std::printf("%s\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
