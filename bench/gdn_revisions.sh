#!/usr/bin/env bash
# The fused gated delta rule kernels of earlier git revisions timed beside the working tree's in
# one GPU call, without LibTorch: each tree's standalone checks (bench/gdn_fused_check.cu,
# bench/gdn_fused_backward_check.cu) built with nvcc, the working tree's checked, then every tree's
# --time-only run in turns, twice (the same GPU, the same minutes: differences of a few percent
# are real only so).
#   bench/gdn_revisions.sh pack REV...   here: each revision's kernels, headers and checks into
#                                        .peers/revisions/REV.tar.xz (git-ignored, ~160 KB each;
#                                        carry .peers/revisions to the GPU machine)
#   bench/gdn_revisions.sh run           there: builds the packed trees and the working tree (all
#                                        cores), checks the working tree, times them all
set -euo pipefail
cd "$(dirname "$0")/.."
packed=.peers/revisions
files=(kernels include bench/gdn_fused_check.cu bench/gdn_fused_backward_check.cu bench/gdn_check_common.cuh)

case ${1:-} in
pack)
  shift
  mkdir -p "$packed"
  for rev in "$@"; do
    git archive "$rev" "${files[@]}" | xz -9 >"$packed/$(git rev-parse --short "$rev").tar.xz"
  done
  ls -la "$packed"
  ;;
run)
  export PATH=/usr/local/cuda/bin:$PATH
  work=$(mktemp -d /tmp/gdn_revisions.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  trees=()
  for archive in "$packed"/*.tar.xz; do
    [ -e "$archive" ] || continue
    name=$(basename "$archive" .tar.xz)
    mkdir -p "$work/$name/src"
    tar -xJf "$archive" -C "$work/$name/src"
    trees+=("$name")
  done
  mkdir -p "$work/worktree"
  ln -s "$PWD" "$work/worktree/src"
  trees+=(worktree)
  # Every translation unit of every tree at once, then the two checks of each tree linked; a tree
  # that does not build is named and left out of the timings.
  for tree in "${trees[@]}"; do
    for unit in "$work/$tree"/src/kernels/gated_delta_chunk*.cu "$work/$tree"/src/bench/gdn_fused_{,backward_}check.cu
    do
      echo "$tree $unit"
    done
  done | xargs -P "$(nproc)" -L 1 sh -c 'nvcc -std=c++20 -O3 -arch=sm_90 -I "'"$work"'/$0/src/include" \
    -I "'"$work"'/$0/src/kernels" -c "$1" -o "'"$work"'/$0/$(basename "$1").o"' || true
  for tree in "${trees[@]}"; do
    kernels=("$work/$tree"/gated_delta_chunk*.o)
    nvcc -arch=sm_90 -o "$work/$tree/forward" "$work/$tree/gdn_fused_check.cu.o" "${kernels[@]}" &
    nvcc -arch=sm_90 -o "$work/$tree/backward" "$work/$tree/gdn_fused_backward_check.cu.o" "${kernels[@]}" &
  done
  wait
  built=()
  for tree in "${trees[@]}"; do
    if [ -x "$work/$tree/forward" ] && [ -x "$work/$tree/backward" ]; then
      built+=("$tree")
    else
      echo "$tree: FAIL (not built)"
    fi
  done
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  status=0
  [ ${#built[@]} = ${#trees[@]} ] || status=1
  if [ -x "$work/worktree/forward" ]; then
    "$work/worktree/forward" || status=1
    "$work/worktree/backward" || status=1
  fi
  for round in 1 2; do
    for tree in "${built[@]}"; do
      echo "== $tree, round $round"
      "$work/$tree/forward" --time-only | grep '^time'
      "$work/$tree/backward" --time-only | grep "^time"
    done
  done
  exit $status
  ;;
*)
  echo "usage: bench/gdn_revisions.sh pack REV... | run" >&2
  exit 2
  ;;
esac
