#include "process_group_factory.h"

#include <cstdlib>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>

// The Gloo process group's header needs Gloo's own headers (libgloo-dev on Debian; absent from
// PyTorch's wheels). Both LibTorch builds strata uses were built with Gloo; the macro tells the
// header so.
#if __has_include(<gloo/algorithm.h>)
#define STRATA_HAS_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#else
#define STRATA_HAS_GLOO 0
#endif

#include "strata/core/compat.h"
#include "strata/core/error.h"

namespace strata::parallel {

#ifdef STRATA_CUDA
// In nccl_process_group.cpp: the NCCL backend, for the CUDA build only.
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                    std::chrono::milliseconds timeout);
void shutdown_nccl_backend(c10d::ProcessGroup& group);
#endif

bool gloo_available() { return STRATA_HAS_GLOO; }

namespace {

#if STRATA_HAS_GLOO
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& host) {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface)
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  return c10d::ProcessGroupGloo::createDeviceForHostname(host);
}

c10::intrusive_ptr<c10d::ProcessGroupGloo> make_gloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                     std::chrono::milliseconds timeout, const std::string& host) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(gloo_device(host));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}
#endif

void require_gloo(CommBackend backend) {
  if (backend == CommBackend::gloo && !STRATA_HAS_GLOO)
    fail("distributed backend gloo: this build of strata found no Gloo headers (gloo/algorithm.h, Debian's "
         "libgloo-dev) when it was compiled; use nccl");
}

}  // namespace

Group make_process_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, CommBackend backend,
                         std::chrono::milliseconds timeout, const std::string& host) {
  require_gloo(backend);
#if STRATA_TORCH_AT_LEAST(2, 0)
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, rank, size);
#if STRATA_HAS_GLOO
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO,
                    make_gloo(c10::make_intrusive<c10d::PrefixStore>("gloo", store), rank, size, timeout, host));
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
#endif
  if (backend == CommBackend::nccl) {
#ifdef STRATA_CUDA
    auto nccl_store = c10::make_intrusive<c10d::PrefixStore>("nccl", store);
    group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL,
                      make_nccl_backend(nccl_store, rank, size, timeout));
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
#else
    fail("distributed backend nccl: this build of strata has no CUDA (configure with -DSTRATA_CUDA=ON); use gloo");
#endif
  }
  return group;
#else
  if (backend == CommBackend::nccl)
    fail("distributed backend nccl: LibTorch ", TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR,
         " on this machine has no NCCL; use gloo");
#if STRATA_HAS_GLOO
  return make_gloo(c10::make_intrusive<c10d::PrefixStore>("gloo", store), rank, size, timeout, host);
#else
  fail("no process group backend: LibTorch ", TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR,
       " offers only Gloo here and its headers (gloo/algorithm.h) were not found when strata was compiled");
#endif
#endif
}

void shutdown_process_group([[maybe_unused]] const Group& group, CommBackend backend) {
  if (backend != CommBackend::nccl) return;
#ifdef STRATA_CUDA
  shutdown_nccl_backend(*group);
#endif
}

}  // namespace strata::parallel
