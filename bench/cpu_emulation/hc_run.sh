#!/usr/bin/env bash
# Checks mHC's kernels on the CPU emulation in emulation.h, without a GPU: the post and res maps
# (kernels/hc_maps.cu, hc_maps_check.cpp), the boundary's per-token kernels (kernels/
# hc_boundary.cu, hc_boundary_check.cpp) and its one-kernel bfloat16 forward (kernels/
# hc_boundary_forward.cu, hc_boundary_forward_check.cpp; mma.sync and ldmatrix from the
# emulation's mma_fragments.cuh). Copies each kernel file with its launches turned into
# emu::launch and its shared arrays into the emulation's buffer or into statics (one block runs at
# a time), compiles them and the checks as C++ with g++, and runs the three checks (about three minutes
# on two cores).
#   bench/cpu_emulation/hc_run.sh      (from anywhere; needs the CUDA headers and cudart)
set -euo pipefail
cd "$(dirname "$0")/../.."
cuda=${CUDA_HOME:-/usr/local/cuda}
work=$(mktemp -d /tmp/hc_cpu_emulation.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cp kernels/common.cuh kernels/sinkhorn.cuh kernels/hc_gates.cuh kernels/hc_combine.cuh "$work/src/"
emulate() { python3 bench/cpu_emulation/emulated_launches.py "$1" "$work/src/$(basename "$1")" "${@:2}"; }
emulate kernels/hc_maps.cu 4 'extern __shared__ float shared[];' 'float* shared = reinterpret_cast<float*>(emu_shared);' \
  '__shared__ float scratch[kReduceThreads / 32];' 'float* scratch = reinterpret_cast<float*>(emu_shared);'
emulate kernels/hc_boundary.cu 5 '__shared__ float grad_pre[' 'static float grad_pre[' \
  '__shared__ float scratch[' 'static float scratch['
emulate kernels/hc_boundary_forward.cu 1 'extern __shared__ __align__(16) unsigned char shared[];' \
  'unsigned char* shared = emu_shared;'
emulate kernels/token_group.cuh 0 '__shared__ float partial[' 'static float partial['
# The rounding intrinsics the kernels spell out (emulation.h has none): plain float operations.
cat > "$work/prelude.h" <<'H'
#pragma once
#include "emulation.h"
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
H
for kernel in hc_maps hc_boundary hc_boundary_forward; do
  g++ -std=c++20 -O2 -w -x c++ -include "$work/prelude.h" -I bench/cpu_emulation -I "$work/src" -I include \
    -I "$cuda/include" -c "$work/src/$kernel.cu" -o "$work/$kernel.o" &
  g++ -std=c++20 -O2 -I include -c "bench/cpu_emulation/${kernel}_check.cpp" -o "$work/${kernel}_check.o" &
done
wait
status=0
for kernel in hc_maps hc_boundary hc_boundary_forward; do
  g++ -o "$work/${kernel}_check" "$work/${kernel}_check.o" "$work/$kernel.o" -L "$cuda/lib64" -lcudart -lpthread
  "$work/${kernel}_check" || status=1
done
exit $status
