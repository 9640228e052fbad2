#pragma once
// Wall-clock timing of CUDA work for the C++ benchmarks: the device is synchronised around each
// run, so the time covers the work the host launched, not just the launches.
#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace strata::bench {

// Median milliseconds of `fn` over `iters` runs after `warmup` runs.
inline double median_ms(const std::function<void()>& fn, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    c10::cuda::device_synchronize();
    const auto start = std::chrono::steady_clock::now();
    fn();
    c10::cuda::device_synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Median milliseconds a call of `fn` takes when `calls` calls run back to back (no
// synchronisation between them, as a model's layers follow one another), over `rounds` rounds
// after `warmup` calls: the GPU's time once the host runs ahead of it. median_ms also counts one
// launch latency and one synchronisation per call.
inline double back_to_back_ms(const std::function<void()>& fn, int warmup, int rounds, int calls = 20) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int r = 0; r < rounds; ++r) {
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
