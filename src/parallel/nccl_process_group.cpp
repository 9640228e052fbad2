// The NCCL backend of a process group, built only with STRATA_CUDA (LibTorch 2.x with CUDA).
#ifdef STRATA_CUDA

#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>

namespace strata::parallel {

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}

void shutdown_nccl_backend(c10d::ProcessGroup& group) {
  static_cast<c10d::ProcessGroupNCCL&>(*group.getBackend(c10::DeviceType::CUDA)).shutdown();
}

}  // namespace strata::parallel

#endif  // STRATA_CUDA
