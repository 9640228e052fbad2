#!/usr/bin/env bash
# The two quick-start commands:
#   ./strata.sh run    build strata and train the embedded default (a small hybrid model on
#                      synthetic associative recall, ~2 minutes on 2 CPU cores), then plot it
#   ./strata.sh test   build strata and run the whole test suite
# Both install missing Debian packages first (scripts/setup.sh) and build into build/.
set -euo pipefail
cd "$(dirname "$0")"

build() {
  scripts/setup.sh
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)"
}

case "${1:-}" in
  run)
    build
    shift
    rm -rf runs/default
    build/strata train --train-iters 600 --save runs/default --metrics runs/default/metrics.jsonl "$@"
    build/strata plot runs/default/metrics.jsonl -o runs/default/curve.svg
    echo "loss and accuracy curves: runs/default/curve.svg"
    ;;
  test)
    build
    shift
    cd build && exec ctest --output-on-failure -j"$(nproc)" "$@"
    ;;
  *)
    echo "usage: ./strata.sh run | test" >&2
    exit 2
    ;;
esac
