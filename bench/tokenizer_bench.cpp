// Tokenizer throughput: encode every line of a text file (no post-processor tokens) and report
// tokens per second, on one thread and on several, best of --repeat passes. The same work as
// bench/tokenizer_bench_hf.py does with HF tokenizers, and printed the same way, so that the two
// run side by side (docs/text.md has the commands).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "strata/core/error.h"
#include "strata/text/tokenizer.h"

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) strata::fail("--input ", path, ": cannot be read");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  return lines;
}

// Encodes lines [begin, end) and returns how many tokens they made.
size_t encode_lines(const strata::text::Tokenizer& tokenizer, const std::vector<std::string>& lines, size_t begin,
                    size_t end) {
  size_t tokens = 0;
  for (size_t i = begin; i < end; ++i) tokens += tokenizer.encode(lines[i], strata::text::AddSpecialTokens::no).size();
  return tokens;
}

// Best-of-`repeat` seconds and the token count of encoding all lines on `threads` threads.
std::pair<double, size_t> time_encoding(const strata::text::Tokenizer& tokenizer, const std::vector<std::string>& lines,
                                        int threads, int repeat) {
  double best = 1e30;
  size_t total = 0;
  for (int r = 0; r < repeat; ++r) {
    std::vector<size_t> counts(threads, 0);
    std::vector<std::thread> workers;
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        counts[t] = encode_lines(tokenizer, lines, lines.size() * t / threads, lines.size() * (t + 1) / threads);
      });
    for (auto& w : workers) w.join();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    total = 0;
    for (auto c : counts) total += c;
  }
  return {best, total};
}

void report(const std::string& label, size_t tokens, size_t bytes, double seconds) {
  std::printf("%s: %zu tokens, %.1f MB in %.2f s: %.0f tokens/s, %.1f MB/s\n", label.c_str(), tokens, bytes / 1e6,
              seconds, tokens / seconds, bytes / 1e6 / seconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata_bench_tokenizer: tokens per second encoding a text file, line by line"};
  std::string type, model, input;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int repeat = 3;
  app.add_option("--tokenizer-type", type, "HuggingFaceTokenizer or SentencePieceTokenizer")->required();
  app.add_option("--tokenizer-model", model, "tokenizer.json / tokenizer.model, or a folder holding it")->required();
  app.add_option("--input", input, "a text file (a few MB); each line is encoded as one text")->required();
  app.add_option("--threads", threads, "threads for the second measurement")->check(CLI::PositiveNumber);
  app.add_option("--repeat", repeat, "timed passes; the fastest is reported")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    const auto tokenizer = strata::text::open_tokenizer(type, model);
    const auto lines = read_lines(input);
    size_t bytes = 0;
    for (const auto& line : lines) bytes += line.size();
    const auto [one, tokens] = time_encoding(*tokenizer, lines, 1, repeat);
    report("strata 1 thread", tokens, bytes, one);
    const auto [many, same_tokens] = time_encoding(*tokenizer, lines, threads, repeat);
    report(strata::cat("strata ", threads, " threads"), same_tokens, bytes, many);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata_bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
