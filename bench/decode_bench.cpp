// Decode throughput of strata's generate on an HF checkpoint folder: greedy, batch 1, a random
// prompt. Decode tokens/s = (N - 1) / (time for N new tokens - time for 1), so the prefill is
// left out (a CUDA graph's capture, once per generate call, is counted). Prints one JSON line for
// bench/compare_decode.py.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <c10/cuda/CUDAFunctions.h>

#include <chrono>
#include <cstdio>

#include "strata/hf/architecture.h"
#include "strata/infer/generate.h"

int main(int argc, char** argv) {
  CLI::App app{"strata decode benchmark"};
  std::string dir;
  int64_t prompt_length = 128, new_tokens = 256;
  app.add_option("--hf", dir, "HF model folder")->required();
  app.add_option("--prompt-length", prompt_length);
  app.add_option("--new-tokens", new_tokens);
  CLI11_PARSE(app, argc, argv);

  auto model = strata::hf::load_hf_model(dir).model;
  model->to(at::Device(at::kCUDA));
  at::manual_seed(0);
  const auto prompt_tensor = at::randint(model->config().vocab_size, {prompt_length}, at::kLong);
  const std::vector<int64_t> prompt(prompt_tensor.data_ptr<int64_t>(), prompt_tensor.data_ptr<int64_t>() + prompt_length);
  auto seconds = [&](int64_t n) {
    strata::infer::SamplingOptions o;
    o.max_new_tokens = n;
    c10::cuda::device_synchronize();
    const auto start = std::chrono::steady_clock::now();
    strata::infer::generate(*model, prompt, o);
    c10::cuda::device_synchronize();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  seconds(new_tokens);  // warm up allocator and kernels
  const double one = seconds(1), all = seconds(new_tokens);
  std::printf("%s\n", nlohmann::json{{"impl", "strata"},
                                     {"decode_tokens_per_s", (new_tokens - 1) / (all - one)},
                                     {"cuda_graph", strata::infer::decodes_with_cuda_graph(*model, at::kCUDA)},
                                     {"prefill_s", one}}
                          .dump()
                          .c_str());
  return 0;
}
