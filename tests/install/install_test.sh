#!/usr/bin/env bash
# Installs the current build into a fresh prefix, then configures, builds and runs the consumer
# program of tests/install/consumer against it, as a library user would.
#   tests/install/install_test.sh <build_dir> <work_dir> [cmake args for the consumer...]
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 <build_dir> <work_dir> [cmake args...]" >&2
  exit 2
fi
build_dir=$1
work_dir=$2
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

rm -rf "$work_dir"
mkdir -p "$work_dir"
cmake --install "$build_dir" --prefix "$work_dir/prefix" >"$work_dir/install.log"
cmake -S "$here/consumer" -B "$work_dir/consumer" -DCMAKE_PREFIX_PATH="$work_dir/prefix" "$@" >"$work_dir/configure.log"
cmake --build "$work_dir/consumer" >"$work_dir/build.log"
"$work_dir/consumer/strata_consumer"
