#!/usr/bin/env bash
# What a run leaves to read (issue 18, logs): every line it printed even when killed (stdout is
# line-buffered into files and pipes), the resolved configuration printed and written as
# config.json beside the metrics, evaluations printed as they happen, --help with every flag
# described and its default, --version. Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work"

"$strata" --version | grep -qE '^strata [0-9]+\.[0-9]+\.[0-9]+ \(LibTorch [0-9.]+'

# --help: each option shows its default and has a description.
"$strata" train --help > help.txt
grep -qE -- '--train-iters INT >= 1, default 60' help.txt
grep -qE -- '--lr REAL > 0, default 0.003' help.txt
# CLI11 starts descriptions at column 31; a longer option spec puts it on the next line.
awk '/^  -/ { if (pending) { print "no description: " pending; bad = 1 }
              pending = (substr($0, 30, 1) == " " && substr($0, 31, 1) ~ /[^ ]/) ? "" : $0; next }
     /^                              [^ ]/ { pending = ""; next }
     END { if (pending) { print "no description: " pending; bad = 1 }; exit bad }' help.txt

# A run killed with SIGKILL: its log, written through a file, still holds every line printed.
"$strata" train --train-iters 100000 --eval-interval 2 --eval-iters 1 --micro-batch-size 4 \
  --metrics run/metrics.jsonl > run.log 2> run.err &
pid=$!
for _ in $(seq 600); do
  if grep -q '"eval_loss"' run/metrics.jsonl 2> /dev/null; then break; fi
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" || true
grep -q "^strata train: a new run" run.log
grep -qE "^  hidden_size \.+ 64$" run.log
grep -qE "^  train_iters \.+ 100000$" run.log
grep -q "^-------------------- end of arguments" run.log
grep -qE "^eval: step 2 loss [0-9.]+ accuracy [0-9.]+$" run.log

# config.json beside the metrics: the run as resolved.
grep -q '"strata_run_configuration": "strata ' run/config.json
grep -qE '"hybrid_layer_pattern": "\[G-\]\[\*-\]"' run/config.json
grep -qE '"train_iters": 100000' run/config.json
grep -qE '"kind": "mqar"' run/config.json

# ... and never over a config.json that is not a run's (here a model config).
mkdir other && echo '{"hidden_size": 64}' > other/config.json
if "$strata" train --train-iters 2 --metrics other/metrics.jsonl > /dev/null 2> err.txt; then exit 1; fi
grep -qF "other/config.json exists and is not a strata run configuration" err.txt
grep -qF '{"hidden_size": 64}' other/config.json

echo "logs: OK"
