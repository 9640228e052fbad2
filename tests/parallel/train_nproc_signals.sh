#!/usr/bin/env bash
# The lifecycle of `strata train --nproc 2`: a SIGTERM to the launcher (or to one rank) stops both
# ranks after one iteration with one checkpoint and exit code 143, and the run resumes after it
# (SIGINT: the same, exit 130);
# a kill -9 of the launcher takes its ranks with it; a rank killed mid-training ends the run with
# an error well within --distributed-timeout-minutes; --nproc outside the machine is refused.
# Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
# Most checks are quiet greps: one that fails names its line and shows the runs' error output.
trap 'echo "train_nproc_signals: the check at line $LINENO failed"; for f in "$work"/*.err; do echo "== $f"; tail -n 20 "$f"; done' ERR

model=(--hybrid-layer-pattern '[*-]' --hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --seq-length 32
       --micro-batch-size 2 --mqar-kv-pairs 4 --eval-iters 1 --lr-warmup-iters 1 --seed 7)
endless=(--train-iters 1000000 --nproc 2)

source "$(dirname "$0")/../cli/run_watch.sh"
# Whether process $1 still runs (a zombie has ended; only its parent has not collected it yet).
running() { local state; state=$(ps -o stat= -p "$1" 2> /dev/null) && [[ $state != Z* ]]; }
# The ranks (children) of launcher $1, once both have started.
ranks_of() {
  for _ in $(seq 100); do
    local ranks; ranks=$(pgrep -P "$1" || true)
    [ "$(echo "$ranks" | wc -w)" -eq 2 ] && { echo "$ranks"; return 0; }
    sleep 0.1
  done
  echo "launcher $1 has no 2 ranks" >&2; exit 1
}
# Runs "$@" in the background, sends signal $sig to $target (launcher or rank1) once it trained a
# few steps, and leaves the exit code in $code and the signal's time (date +%s) in $signalled_at.
# Output in $work/$name.{log,err,jsonl}.
stop_run() {
  local name=$1 sig=$2 target=$3; shift 3
  # A background job of a script starts with SIGINT ignored; a terminal's job would not.
  env --default-signal=INT "$strata" train "${model[@]}" "$@" --metrics "$work/$name.jsonl" > "$work/$name.log" \
    2> "$work/$name.err" &
  local launcher=$!
  wait_for_steps "$work/$name.jsonl" 5
  local ranks; ranks=($(ranks_of "$launcher"))
  signalled_at=$(date +%s)
  if [ "$target" = launcher ]; then kill "-$sig" "$launcher"; else kill "-$sig" "${ranks[1]}"; fi
  code=0 && wait "$launcher" || code=$?
}

# SIGTERM to the launcher: forwarded to both ranks, one stop line, one checkpoint, exit 143.
stop_run term TERM launcher "${endless[@]}" --save "$work/term"
[ "$code" -eq 143 ] || { echo "SIGTERM to the launcher: exit code $code, expected 143"; cat "$work/term.log" "$work/term.err"; exit 1; }
grep -q "^launcher: forwarding SIGTERM to 2 running ranks$" "$work/term.err"
[ "$(grep -c '^stopped after iteration' "$work/term.log")" -eq 1 ]
grep -qE "^stopped after iteration [0-9]+ on SIGTERM: checkpoint saved to $work/term$" "$work/term.log"
stopped=$(stop_iteration "$work/term.log")
[ "$(cat "$work/term/latest_checkpointed_iteration.txt")" -eq "$stopped" ]
[ "$(ls -d "$work"/term/iter_* | wc -l)" -eq 1 ]
[ "$(last_step "$work/term.jsonl")" -eq "$stopped" ]
if grep -q "ranks failed" "$work/term.err"; then echo "a stop reported as a failure:"; cat "$work/term.err"; exit 1; fi
# Both ranks resume from it: the first step is the next one.
"$strata" train "${model[@]}" --nproc 2 --train-iters $((stopped + 2)) --load "$work/term" --save "$work/term" \
  --metrics "$work/resumed.jsonl" > "$work/resumed.log" 2> "$work/resumed.err"
[ "$(first_step "$work/resumed.jsonl")" -eq $((stopped + 1)) ]
[ "$(cat "$work/term/latest_checkpointed_iteration.txt")" -eq $((stopped + 2)) ]
echo "SIGTERM to the launcher after iteration $stopped: exit 143, one checkpoint, resumed at $((stopped + 1))"

# SIGTERM to rank 1 alone: rank 0 learns of it at the next boundary and both stop there (the
# launcher exits 143 only when both ranks did).
stop_run rank1 TERM rank1 "${endless[@]}" --save "$work/rank1"
[ "$code" -eq 143 ] || { echo "SIGTERM to rank 1: exit code $code, expected 143"; cat "$work/rank1.log" "$work/rank1.err"; exit 1; }
stopped=$(stop_iteration "$work/rank1.log")
[ "$(cat "$work/rank1/latest_checkpointed_iteration.txt")" -eq "$stopped" ]

# SIGINT (a Ctrl-C) to the launcher: the same stop, exit 130.
stop_run int INT launcher "${endless[@]}" --save "$work/int"
[ "$code" -eq 130 ] || { echo "SIGINT to the launcher: exit code $code, expected 130"; cat "$work/int.log" "$work/int.err"; exit 1; }
grep -qE "^stopped after iteration [0-9]+ on SIGINT: checkpoint saved to $work/int$" "$work/int.log"
[ "$(cat "$work/int/latest_checkpointed_iteration.txt")" -eq "$(stop_iteration "$work/int.log")" ]

# kill -9 of the launcher: the ranks go with it.
"$strata" train "${model[@]}" "${endless[@]}" --metrics "$work/orphans.jsonl" > "$work/orphans.log" 2>&1 &
launcher=$!
wait_for_steps "$work/orphans.jsonl" 5
ranks=$(ranks_of "$launcher")
kill -KILL "$launcher"
{ wait "$launcher"; } 2> /dev/null || true  # quiet: bash would report the kill
for _ in $(seq 50); do
  alive=0
  for r in $ranks; do running "$r" && alive=$((alive + 1)); done
  [ "$alive" -eq 0 ] && break
  sleep 0.1
done
[ "$alive" -eq 0 ] || { echo "ranks still running 5 s after a kill -9 of their launcher:"; ps -o pid,stat,args -p "${ranks//$'\n'/,}"; exit 1; }

# A rank killed mid-training: rank 0 fails, naming it, long before the 30 s timeout (counted from
# the kill: the start and the first steps before it take longer on a loaded machine).
stop_run vanished KILL rank1 "${endless[@]}" --distributed-timeout-minutes 0.5
seconds=$(( $(date +%s) - signalled_at ))
[ "$code" -eq 1 ] || { echo "a rank killed: exit code $code, expected 1"; cat "$work/vanished.err"; exit 1; }
[ "$seconds" -lt 30 ] || { echo "a rank killed: the run took $seconds s to end after the kill"; exit 1; }
grep -q "^strata: rank 0: .* failed" "$work/vanished.err"
grep -q "rank 1 stopped responding" "$work/vanished.err"
grep -q "^strata: rank 1 was killed by signal 9" "$work/vanished.err"

# --nproc this machine cannot run is refused before anything starts.
for n in 0 -1; do
  if "$strata" train "${model[@]}" --train-iters 1 --nproc "$n" > "$work/out.txt" 2> "$work/err.txt"; then exit 1; fi
  grep -qx -- "--nproc: value $n: expected at least 1" "$work/err.txt"  # the flag's validator
done
if "$strata" train "${model[@]}" --train-iters 1 --nproc 100000 > "$work/out.txt" 2> "$work/err.txt"; then exit 1; fi
grep -qE "^strata: --nproc 100000: at most [0-9]+ ranks here \(4 per usable CPU core, [0-9]+ cores?\)" "$work/err.txt"
if grep -q launching "$work/out.txt"; then exit 1; fi
echo "train_nproc_signals: OK"
