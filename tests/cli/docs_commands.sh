#!/usr/bin/env bash
# Every command written in README.md, docs/*.md and examples/*.md runs as written, so the docs
# cannot rot.
#
# A command a reader may run lives in a ```sh block; each block runs as one bash script (-e,
# pipefail), the blocks of one file in order in one working folder that holds the repository's
# files (linked) and build/ (the build under test), so a block may use what an earlier block of
# its file wrote. A ```output block is what the ```sh block before it prints (prose may stand
# between them, no other block): compared exactly. The words after "sh" in the fence say how a block runs:
#   long=N         it may run for longer than the test can wait: stopped with SIGTERM after N
#                  seconds, it passes if it had not failed by then (strata train saves and exits)
#   needs=gpu      needs a CUDA GPU (nvidia-smi): run where there is one, listed as not run here
#   needs=python:M needs the Python module M (a peer's benchmark): run where it imports
#   quick-start    ./strata.sh run and ./strata.sh test: checked to be strata.sh's commands and
#                  the test command to be the one .ci/run calls; not run from inside the test suite
#                  (the first rebuilds and trains for minutes, the second is this suite)
# A strata command outside a ```sh block fails the test: it would not be run.
# Usage: REPO BUILD_DIR WORK_DIR
set -euo pipefail
repo=$(realpath "$1") build=$(realpath "$2") work=$3
rm -rf "$work" && mkdir -p "$work/blocks"
work=$(realpath "$work")
cd "$repo"

# Cut the markdown into blocks: blocks/N.sh (the commands), N.where (file:line), N.words (the
# fence's words after "sh"), N.expected (a following ```output block).
awk -v out="$work/blocks" '
  function flush() { if (kind == "sh") close(out "/" n ".sh"); if (kind == "output") close(out "/" n ".expected") }
  /^```/ {
    if (!inside) {
      inside = 1; start = FNR; split(substr($0, 4), words, " "); lang = words[1]
      if (lang == "sh") {
        kind = "sh"; n++; printf "" > (out "/" n ".sh")
        print FILENAME ":" FNR > (out "/" n ".where"); close(out "/" n ".where")
        rest = substr($0, 4); sub(/^sh */, "", rest); print rest > (out "/" n ".words"); close(out "/" n ".words")
      } else if (lang == "output" && last_sh == n && last_file == FILENAME) {
        kind = "output"; printf "" > (out "/" n ".expected")
      } else {
        kind = "other:" lang
      }
    } else {
      inside = 0
      last_sh = kind == "sh" ? n : 0; last_file = FILENAME
      flush(); kind = ""
    }
    next
  }
  inside && kind == "sh" { print > (out "/" n ".sh") }
  inside && kind == "output" { print > (out "/" n ".expected") }
  inside && kind ~ /^other/ && $0 ~ /^ *(\.\/)?(build\/)?strata(\.sh)? / {
    print FILENAME ":" FNR ": a strata command outside a ```sh block (it would not be run): " $0 > "/dev/stderr"
    bad = 1
  }
  END { exit bad }
' README.md docs/*.md examples/*.md

# One working folder per markdown file: the repository's entries linked, build/ the build under test.
workdir_of() {
  local dir=$work/run/${1//\//_} entry
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    for entry in "$repo"/* "$repo"/.ci; do
      case $(basename "$entry") in build | build-* | runs) ;; *) ln -s "$entry" "$dir/" ;; esac
    done
    ln -s "$build" "$dir/build"
  fi
  echo "$dir"
}

ran=0 stopped=() not_run=()
for script in $(ls "$work"/blocks/*.sh | sort -V); do
  n=${script%.sh}
  where=$(cat "$n.where") words=$(cat "$n.words")
  long="" needs="" quick_start=0
  for word in $words; do
    case $word in
      long=*) long=${word#long=} ;;
      needs=*) needs=${word#needs=} ;;
      quick-start) quick_start=1 ;;
      *) echo "$where: unknown word '$word' after \`\`\`sh (expected long=N, needs=gpu, needs=python:M, quick-start)"
         exit 1 ;;
    esac
  done
  if [ "$quick_start" = 1 ]; then
    while read -r command _; do
      case $command in
        "./strata.sh") ;;
        *) echo "$where: a quick-start block holds '$command', expected only ./strata.sh run|test"; exit 1 ;;
      esac
    done < <(grep -v '^ *$' "$script")
    grep -q '^\./strata\.sh test$' .ci/run || { echo ".ci/run does not call ./strata.sh test"; exit 1; }
    grep -q '^\./strata\.sh test' "$script" || { echo "$where: the quick start lacks ./strata.sh test"; exit 1; }
    not_run+=("$where (quick start: run on a clean clone before each stop; CI runs ./strata.sh test)")
    continue
  fi
  case $needs in
    "") ;;
    gpu) if ! nvidia-smi > /dev/null 2>&1; then not_run+=("$where (needs a CUDA GPU)"); continue; fi ;;
    python:*)
      if ! python3 -c "import ${needs#python:}" > /dev/null 2>&1; then
        not_run+=("$where (needs the Python module ${needs#python:})"); continue
      fi ;;
    *) echo "$where: needs=$needs: expected gpu or python:MODULE"; exit 1 ;;
  esac
  dir=$(workdir_of "${where%%:*}")
  code=0
  if [ -n "$long" ]; then
    (cd "$dir" && timeout -s TERM "$long" bash -eo pipefail "$script") > "$n.out" 2> "$n.err" || code=$?
  else
    (cd "$dir" && bash -eo pipefail "$script") > "$n.out" 2> "$n.err" || code=$?
  fi
  if [ -n "$long" ] && [ "$code" = 124 ]; then
    stopped+=("$where (stopped after $long s)")
  elif [ "$code" != 0 ]; then
    echo "$where: exit code $code from:"; cat "$script"; echo "--- stdout:"; tail -20 "$n.out"
    echo "--- stderr:"; tail -20 "$n.err"; exit 1
  fi
  if [ -f "$n.expected" ] && ! diff -u "$n.expected" "$n.out" > "$n.diff"; then
    echo "$where: the output differs from the \`\`\`output block after it:"; cat "$n.diff"; exit 1
  fi
  ran=$((ran + 1))
  echo "ran $where"
done

for entry in "${stopped[@]}"; do echo "ran until stopped: $entry"; done
for entry in "${not_run[@]}"; do echo "not run here: $entry"; done
echo "docs: OK ($ran blocks ran, ${#stopped[@]} of them stopped after their time, ${#not_run[@]} not run here)"
