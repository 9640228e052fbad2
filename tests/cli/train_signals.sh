#!/usr/bin/env bash
# `strata train` stopped early, as a scheduler or a user stops it: SIGTERM mid-run saves the step
# it interrupted and exits 143 (SIGINT: 130), and --load continues from the next step;
# --exit-interval and --exit-duration-in-mins save and exit 0. Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
rm -rf "$work" && mkdir -p "$work"

# Tiny and endless: each run ends only by the stop under test.
model=(--hybrid-layer-pattern '[*-]' --hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --seq-length 32
       --micro-batch-size 2 --mqar-kv-pairs 4 --eval-iters 1 --lr-warmup-iters 1 --seed 7)
endless=(--train-iters 1000000)

source "$(dirname "$0")/run_watch.sh"

# SIGTERM mid-run: exit 128 + 15, the stop line, a checkpoint of the step it stopped after.
"$strata" train "${model[@]}" "${endless[@]}" --save "$work/a" --metrics "$work/a.jsonl" > "$work/a.log" 2> "$work/a.err" &
pid=$!
wait_for_steps "$work/a.jsonl" 5
kill -TERM "$pid"
code=0 && wait "$pid" || code=$?
[ "$code" -eq 143 ] || { echo "SIGTERM: exit code $code, expected 143"; cat "$work/a.log"; exit 1; }
grep -qE "^stopped after iteration [0-9]+ on SIGTERM: checkpoint saved to $work/a$" "$work/a.log"
stopped=$(stop_iteration "$work/a.log")
[ "$(cat "$work/a/latest_checkpointed_iteration.txt")" -eq "$stopped" ]
[ "$(last_step "$work/a.jsonl")" -eq "$stopped" ]
# The run resumes from there: its first step is the next one.
"$strata" train "${model[@]}" --train-iters $((stopped + 2)) --load "$work/a" --save "$work/a" \
  --metrics "$work/resumed.jsonl" > "$work/resumed.log" 2> "$work/resumed.err"
[ "$(first_step "$work/resumed.jsonl")" -eq $((stopped + 1)) ]
[ "$(cat "$work/a/latest_checkpointed_iteration.txt")" -eq $((stopped + 2)) ]
echo "SIGTERM after iteration $stopped: exit 143, checkpoint $stopped, resumed at $((stopped + 1))"

# SIGINT (a Ctrl-C): the same stop, exit 130. A background job of a script starts with SIGINT
# ignored (and an ignored signal stays ignored); a terminal's job would not.
env --default-signal=INT "$strata" train "${model[@]}" "${endless[@]}" --save "$work/int" --metrics "$work/int.jsonl" \
  > "$work/int.log" 2> "$work/int.err" &
pid=$!
wait_for_steps "$work/int.jsonl" 5
kill -INT "$pid"
code=0 && wait "$pid" || code=$?
[ "$code" -eq 130 ] || { echo "SIGINT: exit code $code, expected 130"; cat "$work/int.log"; exit 1; }
grep -qE "^stopped after iteration [0-9]+ on SIGINT: checkpoint saved to $work/int$" "$work/int.log"
[ "$(cat "$work/int/latest_checkpointed_iteration.txt")" -eq "$(stop_iteration "$work/int.log")" ]

# --exit-interval: the first multiple of 5, exit 0.
"$strata" train "${model[@]}" "${endless[@]}" --exit-interval 5 --save "$work/b" > "$work/b.log" 2> "$work/b.err"
grep -qx "stopped after iteration 5 at a multiple of --exit-interval 5: checkpoint saved to $work/b" "$work/b.log"
[ "$(cat "$work/b/latest_checkpointed_iteration.txt")" -eq 5 ]

# --exit-duration-in-mins 0.02 (1.2 s), exit 0.
start=$(date +%s%N)
"$strata" train "${model[@]}" "${endless[@]}" --exit-duration-in-mins 0.02 --save "$work/c" > "$work/c.log" 2> "$work/c.err"
seconds=$(( ($(date +%s%N) - start) / 1000000000 ))
grep -qE "^stopped after iteration [0-9]+ after 0\.0[23] minutes of training \(--exit-duration-in-mins 0\.02\): checkpoint saved to $work/c$" "$work/c.log"
[ "$(cat "$work/c/latest_checkpointed_iteration.txt")" -eq "$(stop_iteration "$work/c.log")" ]
[ "$seconds" -lt 30 ]

# Without --save the stop line says that nothing was saved.
"$strata" train "${model[@]}" "${endless[@]}" --exit-interval 2 > "$work/d.log" 2> "$work/d.err"
grep -qx "stopped after iteration 2 at a multiple of --exit-interval 2: no --save, nothing saved" "$work/d.log"
echo "train_signals: OK"
