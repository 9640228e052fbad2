#pragma once
// Wall-clock timing of CUDA work for the C++ benchmarks: the device is synchronised around each
// run, so the time covers the work the host launched, not just the launches.
#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace strata::bench {

// Median milliseconds a call of `fn` takes, over `iters` rounds after `warmup` calls, each round
// `calls` calls between two synchronisations. With one call a round the time also counts a launch
// latency and a synchronisation; with several run back to back (no synchronisation between them,
// as a model's layers follow one another) it is the GPU's time once the host runs ahead of it.
inline double median_ms(const std::function<void()>& fn, int warmup, int iters, int calls = 1) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int r = 0; r < iters; ++r) {
    c10::cuda::device_synchronize();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) fn();
    c10::cuda::device_synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / calls);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace strata::bench
