#pragma once
// Metrics as JSON lines (one object per logged step, appended and flushed), and a one-line
// progress bar on the terminal.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

namespace strata::train {

class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);  // empty path: no file
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
};

class ProgressBar {
 public:
  ProgressBar(int64_t total_steps, int64_t first_step);
  // Redraws: [#####.....] step/total loss tokens/s ETA, plus `extra` (e.g. accuracy).
  void update(int64_t step, double loss, double tokens_per_second, const std::string& extra);
  // A line on stdout (an evaluation, a note), clearing the bar first on a terminal.
  void print_line(const std::string& line);
  void finish();

 private:
  int64_t total_, first_;
  std::chrono::steady_clock::time_point start_;
  bool terminal_;
};

}  // namespace strata::train
