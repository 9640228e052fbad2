#pragma once
// Where the GPU time of a call goes: runs it once under PyTorch's Kineto profiler and prints the
// CUDA kernels by total time (name cut to a readable width, count, ms), then the copy kernels
// (casts, contiguous copies) by the ATen op that launched them and its inputs' shapes and dtypes,
// which says whose copies they are. For finding what to fuse next; the benchmarks' numbers come
// from cuda_timing.h, not from here.
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace strata::bench {

inline void print_kernel_profile(std::FILE* out, const char* what, const std::function<void()>& fn, size_t top = 25) {
  namespace profiler = torch::autograd::profiler;
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO,
                                                     /*report_input_shapes=*/true);
  const std::set<torch::profiler::impl::ActivityType> activities{torch::profiler::impl::ActivityType::CPU,
                                                                 torch::profiler::impl::ActivityType::CUDA};
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
  // A CPU op as "name [shapes] (dtypes)", keyed by the correlation id its kernels link to.
  auto describe = [](const auto& event) {
    std::ostringstream text;
    text << event.name();
    if constexpr (requires { event.shapes(); event.dtypes(); }) {
      text << " [";
      for (const auto& shape : event.shapes()) {
        text << "(";
        for (const auto size : shape) text << size << ",";
        text << ")";
      }
      text << "] (";
      for (const auto& dtype : event.dtypes()) text << dtype << ",";
      text << ")";
    }
    return text.str();
  };
  std::map<uint64_t, std::string> ops;
  for (const auto& event : result->events())
    if (event.deviceType() == c10::DeviceType::CPU) ops[event.correlationId()] = describe(event);

  using Rows = std::map<std::string, std::pair<int, double>>;
  Rows by_name, copies_by_op;
  auto add = [](Rows& rows, const std::string& key, double us) {
    auto& [count, sum] = rows[key];
    ++count;
    sum += us;
  };
  double total = 0;
  for (const auto& event : result->events()) {
    if (event.deviceType() != c10::DeviceType::CUDA) continue;
    const double us = microseconds(event);
    add(by_name, event.name().substr(0, 110), us);
    total += us;
    if (event.name().find("copy") == std::string::npos) continue;
    const auto op = ops.find(event.linkedCorrelationId());
    add(copies_by_op, op == ops.end() ? std::string("(no launching op found)") : op->second.substr(0, 160), us);
  }
  auto print = [&](const Rows& by_key) {
    std::vector<std::pair<std::string, std::pair<int, double>>> rows(by_key.begin(), by_key.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
    for (size_t i = 0; i < std::min(top, rows.size()); ++i)
      std::fprintf(out, "#  %8.3f ms %5d  %s\n", rows[i].second.second / 1000, rows[i].second.first,
                   rows[i].first.c_str());
  };
  std::fprintf(out, "# kernel profile, %s: %.3f ms of kernels in %zu kinds\n", what, total / 1000, by_name.size());
  print(by_name);
  std::fprintf(out, "# copy kernels by the op that launched them (name [input shapes] (dtypes)):\n");
  print(copies_by_op);
}

}  // namespace strata::bench
