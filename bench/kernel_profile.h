#pragma once
// Where the GPU time of a call goes: runs it once under PyTorch's Kineto profiler and prints the
// CUDA kernels by total time (name cut to a readable width, count, ms). For finding what to fuse
// next; the benchmarks' numbers come from cuda_timing.h, not from here.
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace strata::bench {

inline void print_kernel_profile(std::FILE* out, const char* what, const std::function<void()>& fn, size_t top = 25) {
  namespace profiler = torch::autograd::profiler;
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  const std::set<torch::profiler::impl::ActivityType> activities{torch::profiler::impl::ActivityType::CUDA};
  c10::cuda::device_synchronize();
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  fn();
  c10::cuda::device_synchronize();
  const auto result = profiler::disableProfiler();

  // LibTorch versions name the duration accessor differently.
  auto microseconds = [](const auto& event) -> double {
    if constexpr (requires { event.durationNs(); })
      return event.durationNs() / 1000.0;
    else
      return static_cast<double>(event.durationUs());
  };
  std::map<std::string, std::pair<int, double>> by_name;
  double total = 0;
  for (const auto& event : result->events()) {
    if (event.deviceType() != c10::DeviceType::CUDA) continue;
    auto& [count, us] = by_name[event.name().substr(0, 110)];
    ++count;
    us += microseconds(event);
    total += microseconds(event);
  }
  std::vector<std::pair<std::string, std::pair<int, double>>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
  std::fprintf(out, "# kernel profile, %s: %.3f ms of kernels in %zu kinds\n", what, total / 1000, rows.size());
  for (size_t i = 0; i < std::min(top, rows.size()); ++i)
    std::fprintf(out, "#  %8.3f ms %5d  %s\n", rows[i].second.second / 1000, rows[i].second.first, rows[i].first.c_str());
}

}  // namespace strata::bench
