#include "strata/train/metrics.h"

#include <unistd.h>

#include <filesystem>

#include "strata/core/error.h"

namespace strata::train {

MetricsLog::MetricsLog(const std::string& path) {
  if (path.empty()) return;
  // Like --save, the file's folder is made when missing (runs/<name>/metrics.jsonl is the usual
  // place, before the first checkpoint exists).
  const auto folder = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!folder.empty()) std::filesystem::create_directories(folder, error);
  if (error) fail("--metrics ", path, ": cannot create the folder ", folder.string(), ": ", error.message());
  out_.open(path, std::ios::app);
  if (!out_) fail("--metrics ", path, ": cannot open for appending");
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!out_.is_open()) return;
  out_ << record.dump() << '\n';
  out_.flush();
}

ProgressBar::ProgressBar(int64_t total_steps, int64_t first_step)
    : total_(total_steps), first_(first_step), start_(std::chrono::steady_clock::now()), terminal_(::isatty(2)) {}

void ProgressBar::update(int64_t step, double loss, double tokens_per_second, const std::string& extra) {
  constexpr int width = 24;
  const double done = total_ > 0 ? static_cast<double>(step) / static_cast<double>(total_) : 1.0;
  const auto filled = static_cast<int>(done * width);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double per_step = step > first_ ? elapsed / static_cast<double>(step - first_) : 0.0;
  const double eta = per_step * static_cast<double>(total_ - step);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  // On a terminal the bar redraws in place; in a log every update is its own line.
  std::fprintf(stderr, "%s[%s] %lld/%lld loss %.4f %7.0f tok/s ETA %4.0fs %s%s", terminal_ ? "\r" : "", bar.c_str(),
               static_cast<long long>(step), static_cast<long long>(total_), loss, tokens_per_second, eta,
               extra.c_str(), terminal_ ? "" : "\n");
  std::fflush(stderr);
}

void ProgressBar::print_line(const std::string& line) {
  if (terminal_) std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void ProgressBar::finish() {
  if (terminal_) std::fprintf(stderr, "\n");
}

}  // namespace strata::train
