#!/usr/bin/env bash
# Checks the mHC boundary's per-token kernels (kernels/hc_boundary.cu: the collapse from the
# projection's product, the projection's gradient) on the CPU emulation in emulation.h, without a
# GPU: copies the kernels with each launch turned into emu::launch and their shared arrays into
# statics (one block runs at a time), compiles them and hc_boundary_check.cpp as C++ with g++, and
# runs the check (about a minute on two cores).
#   bench/cpu_emulation/hc_boundary_run.sh      (from anywhere; needs the CUDA headers and cudart)
set -euo pipefail
cd "$(dirname "$0")/../.."
cuda=${CUDA_HOME:-/usr/local/cuda}
work=$(mktemp -d /tmp/hc_boundary_cpu_emulation.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cp kernels/common.cuh kernels/hc_gates.cuh "$work/src/"
python3 - kernels/hc_boundary.cu "$work/src/hc_boundary.cu" kernels/token_group.cuh "$work/src/token_group.cuh" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s, count = re.subn(r'(\w+(?:<[^<>]*>)?)\s*<<<(.*?),\s*(\w+),\s*([^,]+?),\s*host::as_cuda\(stream\)>>>\((.*?)\);',
                   r'emu::launch(dim3(\2), \3, [&] { \1(\5); });', s, flags=re.S)
assert count == 4, f"expected 4 launches in kernels/hc_boundary.cu, found {count}"
old = '__shared__ float grad_pre['
assert old in s, old
open(sys.argv[2], 'w').write(s.replace(old, 'static float grad_pre['))
t = open(sys.argv[3]).read()
old = '__shared__ float partial['
assert old in t, old
open(sys.argv[4], 'w').write(t.replace(old, 'static float partial['))
PY
# The rounding intrinsics the kernels spell out (emulation.h has none): plain float operations.
cat > "$work/prelude.h" <<'H'
#pragma once
#include "emulation.h"
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
H
g++ -std=c++20 -O2 -w -x c++ -include "$work/prelude.h" -I bench/cpu_emulation -I "$work/src" -I include \
  -I "$cuda/include" -c "$work/src/hc_boundary.cu" -o "$work/hc_boundary.o" &
g++ -std=c++20 -O2 -I include -c bench/cpu_emulation/hc_boundary_check.cpp -o "$work/check.o" &
wait
g++ -o "$work/check" "$work/check.o" "$work/hc_boundary.o" -L "$cuda/lib64" -lcudart -lpthread
"$work/check"
