#pragma once
// Creates one c10d process group for a set of ranks that share `store`. The one place where the
// LibTorch versions differ for process groups: in 1.13 ProcessGroupGloo is itself a ProcessGroup;
// from 2.0 on, Gloo and NCCL are Backends that a ProcessGroup dispatches to by device type.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>

#include "strata/parallel/world.h"

namespace strata::parallel {

// Whether this build has Gloo: Debian's LibTorch with libgloo-dev's headers does; PyTorch's wheels
// ship no Gloo headers, so a GPU build there runs NCCL alone and CPU tensors that must travel
// are staged through the GPU (collectives.h).
bool gloo_available();

// `host` is the address the Gloo transport binds to (GLOO_SOCKET_IFNAME, when set, names an
// interface instead). With CommBackend::nccl, CUDA tensors go through NCCL and CPU tensors
// (pipeline shape headers, loss statistics, checkpoint gathers) through Gloo where available.
Group make_process_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, CommBackend backend,
                         std::chrono::milliseconds timeout, const std::string& host);

// Releases the NCCL communicators of a group made with `backend`, as PyTorch's
// destroy_process_group() does; without it NCCL's destructor warns at exit that the group leaked.
// Nothing to do for Gloo.
void shutdown_process_group(const Group& group, CommBackend backend);

}  // namespace strata::parallel
