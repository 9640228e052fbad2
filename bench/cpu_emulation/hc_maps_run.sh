#!/usr/bin/env bash
# Checks the mHC post and res maps kernels (kernels/hc_maps.cu) on the CPU emulation in
# emulation.h, without a GPU: copies the kernel with each launch turned into emu::launch and its
# shared memory into the emulation's buffer, compiles it and hc_maps_check.cpp as C++ with g++,
# and runs the check (about a minute on two cores).
#   bench/cpu_emulation/hc_maps_run.sh      (from anywhere; needs the CUDA headers and cudart)
set -euo pipefail
cd "$(dirname "$0")/../.."
cuda=${CUDA_HOME:-/usr/local/cuda}
work=$(mktemp -d /tmp/hc_maps_cpu_emulation.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cp kernels/common.cuh kernels/sinkhorn.cuh kernels/hc_gates.cuh "$work/src/"
python3 - kernels/hc_maps.cu "$work/src/hc_maps.cu" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s, count = re.subn(r'(\w+(?:<[^<>]*>)?)<<<(.*?),\s*(\w+),\s*([^,]+?),\s*host::as_cuda\(stream\)>>>\((.*?)\);',
                   r'emu::launch(dim3(\2), \3, [&] { \1(\5); });', s, flags=re.S)
assert count == 4, f"expected 4 launches in kernels/hc_maps.cu, found {count}"
for old, new in [('extern __shared__ float shared[];', 'float* shared = reinterpret_cast<float*>(emu_shared);'),
                 ('__shared__ float scratch[kReduceThreads / 32];',
                  'float* scratch = reinterpret_cast<float*>(emu_shared);')]:
    assert old in s, old
    s = s.replace(old, new)
open(sys.argv[2], 'w').write(s)
PY
# The rounding intrinsics the kernel spells out (emulation.h has none): plain float operations.
cat > "$work/prelude.h" <<'H'
#pragma once
#include "emulation.h"
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
H
g++ -std=c++20 -O2 -w -x c++ -include "$work/prelude.h" -I bench/cpu_emulation -I "$work/src" -I include \
  -I "$cuda/include" -c "$work/src/hc_maps.cu" -o "$work/hc_maps.o" &
g++ -std=c++20 -O2 -I include -c bench/cpu_emulation/hc_maps_check.cpp -o "$work/check.o" &
wait
g++ -o "$work/check" "$work/check.o" "$work/hc_maps.o" -L "$cuda/lib64" -lcudart -lpthread
"$work/check"
