# refused MESSAGE ARGS...: `$strata ARGS` must fail and print MESSAGE (a fixed string) on stderr.
# Sourced by the CLI tests that set $strata; not run.
refused() {
  local expect=$1
  shift
  if "$strata" "$@" > out.txt 2> err.txt; then
    echo "accepted: $*"; cat out.txt; exit 1
  fi
  grep -qF -- "$expect" err.txt || { echo "expected '$expect' from: $*"; cat err.txt; exit 1; }
}
