#pragma once
// Helpers shared by the unit tests: a small config, the device tests run on
// (STRATA_TEST_DEVICE=cuda runs them on the GPU), and the bytes autograd keeps for backward.
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "strata/core/compat.h"
#include "strata/core/config.h"
#include "strata/core/error.h"
#include "strata/core/llama_style.h"

namespace strata::testing {

// The message of the strata::Error that `action` throws; a test failure (and "") when it throws none.
inline std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted; expected a strata::Error";
  return "";
}

// A folder under the system's temporary folder for one test, empty: strata_<name>_<pid>.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("strata_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

inline at::Device test_device() {
  const char* env = std::getenv("STRATA_TEST_DEVICE");
  return env && std::string(env) == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
}

inline std::shared_ptr<TransformerConfig> small_config() {
  auto c = std::make_shared<TransformerConfig>();
  use_llama_style(*c);
  c->num_layers = 2;
  c->hidden_size = 32;
  c->ffn_hidden_size = 48;
  c->num_attention_heads = 4;
  c->num_query_groups = 2;
  c->kv_channels = 8;
  c->vocab_size = 64;
  c->layernorm_epsilon = 1e-6;
  c->qk_layernorm = true;
  return c;
}

// Small sizes for the Mamba2 (M) and Gated DeltaNet (G) layers of a hybrid pattern on
// small_config(), with chunks shorter than the test sequences.
inline void use_small_hybrid_mixers(TransformerConfig& c) {
  c.mamba_head_dim = 8;
  c.mamba_num_groups = 2;
  c.mamba_state_dim = 16;
  c.mamba_chunk_size = 4;
  c.linear_num_key_heads = 2;
  c.linear_num_value_heads = 2;
  c.linear_key_head_dim = 8;
  c.linear_value_head_dim = 12;
  c.linear_chunk_size = 4;
}

inline std::string fixture(const std::string& arch) { return std::string(STRATA_FIXTURES_DIR) + "/" + arch; }

// Wraps the CPU allocator and counts the bytes of the allocations it made that are still live.
// One instance lives for the whole process: a storage keeps a pointer to the allocator that made
// it (to grow it), so the allocator must outlive every tensor it allocated.
class CountingCpuAllocator final : public c10::Allocator {
 public:
  static CountingCpuAllocator& instance() {
    static auto* allocator = new CountingCpuAllocator();
    return *allocator;
  }

  // LibTorch 2.3 made allocate non-const.
#if STRATA_TORCH_AT_LEAST(2, 3)
  c10::DataPtr allocate(size_t bytes) override {
#else
  c10::DataPtr allocate(size_t bytes) const override {
#endif
    auto inner = inner_->allocate(bytes);
    void* data = inner.get();
    const auto device = inner.device();
    live_ += static_cast<int64_t>(bytes);
    return {data, new Allocation{std::move(inner), bytes}, &release, device};
  }

#if STRATA_TORCH_AT_LEAST(2, 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#endif

  int64_t live_bytes() const { return live_.load(); }

  // Routes CPU allocations through the counter while in scope.
  class Installed {
   public:
    Installed() : previous_(c10::GetCPUAllocator()) {
      instance().inner_ = previous_;
      c10::SetCPUAllocator(&instance());
      if (c10::GetCPUAllocator() != &instance())
        fail("CountingCpuAllocator: the CPU allocator was registered with a priority above 0; cannot count");
    }
    ~Installed() { c10::SetCPUAllocator(previous_); }
    Installed(const Installed&) = delete;
    Installed& operator=(const Installed&) = delete;

   private:
    c10::Allocator* previous_;
  };

 private:
  struct Allocation {
    c10::DataPtr inner;
    size_t bytes;
  };
  static void release(void* context) {
    auto* allocation = static_cast<Allocation*>(context);
    instance().live_ -= static_cast<int64_t>(allocation->bytes);
    delete allocation;
  }

  c10::Allocator* inner_ = nullptr;
  mutable std::atomic<int64_t> live_{0};
};

// Bytes of CPU memory the autograd graph built by `forward` keeps alive for backward: live after
// `forward` returns, minus live once the returned tensors are detached and their graph dropped.
// Tensors that existed before (inputs, parameters) cost nothing even when saved. `forward` must
// leave no reference to its intermediates outside what it returns (a module caching a tensor
// across calls would hide that tensor's graph from the count).
inline int64_t bytes_saved_for_backward(const std::function<std::vector<at::Tensor>()>& forward) {
  CountingCpuAllocator::Installed counting;
  auto& counter = CountingCpuAllocator::instance();
  auto outputs = forward();
  const int64_t with_graph = counter.live_bytes();
  std::vector<at::Tensor> values;
  for (const auto& output : outputs) values.push_back(output.detach());
  outputs.clear();
  return with_graph - counter.live_bytes();
}

}  // namespace strata::testing
