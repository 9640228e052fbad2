#!/usr/bin/env bash
# Checks the fused gated delta rule kernels (forward, then the backward with its forward
# recomputation) and the q and k normalisation (kernels/l2_normalize_heads.cu) on the CPU
# emulation in emulation.h, without a GPU: copies kernels/gated_delta_chunk*.cu{,h} and
# l2_normalize_heads.cu with each launch turned into emu::launch and the dynamic shared memory
# into the emulation's buffer, compiles them and the checks (check_forward.cpp, check.cpp,
# l2_normalize_heads_check.cpp) as C++ with g++, and runs the three (a few minutes on two cores).
#   bench/cpu_emulation/run.sh            (from the repository root; needs the CUDA headers and cudart)
set -euo pipefail
cd "$(dirname "$0")/../.."
cuda=${CUDA_HOME:-/usr/local/cuda}
work=$(mktemp -d /tmp/gdn_cpu_emulation.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/shadow"
: > "$work/shadow/cuda_pipeline.h"  # the cp.async primitives come from emulation.h
cp bench/cpu_emulation/mma_fragments.cuh "$work/shadow/"  # mma.sync, ldmatrix and stmatrix emulated
cp kernels/common.cuh "$work/src/"
for f in kernels/gated_delta_chunk*.cu kernels/gated_delta_chunk*.cuh; do
  python3 - "$f" "$work/src/$(basename "$f")" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
s = re.sub(r'(\w+)<<<([^,]+),\s*([^,]+),[^>]*>>>\((\w+)\);', r'emu::launch(\2, \3, [&] { \1(\4); });', s)
s = s.replace('extern __shared__ __align__(128) unsigned char shared[];', 'unsigned char* shared = emu_shared;')
open(sys.argv[2], 'w').write(s)
PY
done
python3 bench/cpu_emulation/emulated_launches.py kernels/l2_normalize_heads.cu "$work/src/l2_normalize_heads.cu" 2
flags=(-std=c++20 -O2 -w -x c++ -include bench/cpu_emulation/emulation.h -I "$work/shadow" -I "$work/src" -I bench
       -I include -I "$cuda/include")
kernel_objects=()
for f in "$work"/src/*.cu bench/cpu_emulation/check.cpp bench/cpu_emulation/check_forward.cpp; do
  g++ "${flags[@]}" -c "$f" -o "$work/$(basename "$f").o" &
  case $f in *.cu) kernel_objects+=("$work/$(basename "$f").o") ;; esac
done
g++ -std=c++20 -O2 -I include -I bench/cpu_emulation -c bench/cpu_emulation/l2_normalize_heads_check.cpp \
  -o "$work/l2_normalize_heads_check.cpp.o" &
wait
status=0
for check in check_forward check; do
  g++ -o "$work/$check" "$work/$check.cpp.o" "${kernel_objects[@]}" -L "$cuda/lib64" -lcudart -lpthread
  "$work/$check" || status=1
done
g++ -o "$work/l2_normalize_heads_check" "$work/l2_normalize_heads_check.cpp.o" "$work/l2_normalize_heads.cu.o" \
  -L "$cuda/lib64" -lcudart -lpthread
"$work/l2_normalize_heads_check" || status=1
exit $status
