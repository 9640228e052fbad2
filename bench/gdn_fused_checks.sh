#!/usr/bin/env bash
# One command on the GPU machine for the fused chunked gated delta rule's standalone checks
# (no LibTorch): builds bench/gdn_fused_check.cu (forward) and bench/gdn_fused_backward_check.cu
# (every gradient against float64, then forward + backward timings at T = 4096 and 16384) with
# nvcc, the kernels compiled in parallel, runs each under a timeout, and prints their output and
# one summary line per check (PASS, FAIL, TIMEOUT or BUILD FAILED). Exit status 0 when both pass.
#   bench/gdn_fused_checks.sh      (from anywhere; logs in $OUT, default /tmp/gdn-fused-checks)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gdn-fused-checks}
mkdir -p "$out"
build=$(mktemp -d /tmp/gdn_fused_checks.XXXXXX)
trap 'rm -rf "$build"' EXIT
flags=(-std=c++20 -O3 -arch=sm_90 -I include -I kernels)
checks=(gdn_fused_check gdn_fused_backward_check)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | tee "$out/device.txt"
start=$SECONDS
for source in kernels/gated_delta_chunk*.cu "${checks[@]/#/bench/}"; do
  source=${source%.cu}.cu
  timeout 300 nvcc "${flags[@]}" -c "$source" -o "$build/$(basename "$source" .cu).o" >"$build/$(basename "$source" .cu).build.log" 2>&1 &
done
wait
echo "built in $((SECONDS - start)) s"
kernel_objects=("$build"/gated_delta_chunk*.o)
summary=()
status=0
for check in "${checks[@]}"; do
  log=$out/$check.log
  if ! nvcc -arch=sm_90 -o "$build/$check" "$build/$check.o" "${kernel_objects[@]}" >"$log" 2>&1; then
    cat "$build"/*.build.log "$log" | grep -v '^$' | tail -40
    summary+=("$check: BUILD FAILED")
    status=1
    continue
  fi
  timeout 300 "$build/$check" >"$log" 2>&1
  rc=$?
  echo "== $check (exit $rc)"
  cat "$log"
  if [ $rc -eq 0 ]; then summary+=("$check: PASS")
  elif [ $rc -eq 124 ]; then summary+=("$check: TIMEOUT (300 s)"); status=1
  elif [ $rc -eq 3 ]; then summary+=("$check: NOT RUN (no CUDA device; its CPU part passed)"); status=1
  else summary+=("$check: FAIL (exit $rc)"); status=1
  fi
done
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
exit $status
