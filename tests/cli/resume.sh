#!/usr/bin/env bash
# Resuming as a user does it (issue 18): --load restores what the flags leave out (data, shapes,
# schedule) and refuses what contradicts the checkpoint, naming both values; a --load folder with
# no checkpoint and a --save folder holding another run are refused, never a fresh start that
# overwrites; --finetune and --load-hf start new runs from weights. Usage: STRATA WORK_DIR FIXTURES
set -euo pipefail
strata=$1 work=$2 fixtures=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"

model=(--hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --eval-iters 1)
head -c 30000 "$fixtures/../../../README.md" > corpus.txt

source "$(dirname "$0")/expect_refusal.sh"
# The first logged step of a metrics file after line N.
first_step_after() { tail -n +"$(($2 + 1))" "$1" | grep -m1 '"loss"' | grep -o '"step":[0-9]*' | grep -o '[0-9]*'; }

# A text run of 4 steps, with its own shapes and schedule.
"$strata" train "${model[@]}" --data-path corpus.txt --seq-length 48 --micro-batch-size 3 --global-batch-size 6 \
  --lr 0.002 --min-lr 0.0001 --lr-warmup-iters 2 --lr-decay-iters 8 --train-iters 4 --save run \
  --metrics run/metrics.jsonl > first.log
grep -qE '"kind": ?"text"' run/iter_0000004/state.json
grep -qE '"seq_length": ?48' run/iter_0000004/state.json
lines=$(wc -l < run/metrics.jsonl)

# Resumed with no data or shape flags: the text data, seq length 48 and batch 3 x 2 come back,
# the data position continues (step 5 is the next logged), and the schedule continues to 8.
"$strata" train --load run --save run --train-iters 6 --metrics run/metrics.jsonl > resumed.log
grep -q "resumes run at iteration 4" resumed.log
grep -q "data: .*corpus.txt" resumed.log
grep -qE "^  seq_length \.+ 48$" resumed.log
grep -qE "^  micro_batch_size \.+ 3$" resumed.log
grep -qE "^  lr_decay_iters \.+ 8$" resumed.log
test "$(first_step_after run/metrics.jsonl "$lines")" = 5
test "$(cat run/latest_checkpointed_iteration.txt)" = 6

# The same two runs uninterrupted give the same losses (the resumed run is the same run).
"$strata" train "${model[@]}" --data-path corpus.txt --seq-length 48 --micro-batch-size 3 --global-batch-size 6 \
  --lr 0.002 --min-lr 0.0001 --lr-warmup-iters 2 --lr-decay-iters 8 --train-iters 6 > whole.log
grep "^train:" whole.log | grep -o "step 6 loss [0-9.]*" > whole_loss.txt
grep "^train:" resumed.log | grep -o "step 6 loss [0-9.]*" > resumed_loss.txt
cmp whole_loss.txt resumed_loss.txt

# Contradictions are refused with both values, all at once.
refused "--seq-length: checkpoint 48, this run 32" train --load run --save run --train-iters 8 --seq-length 32
refused "--lr: checkpoint 0.002, this run 0.01" train --load run --save run --train-iters 8 --lr 0.01
grep -qF "model hidden_size (--hidden-size or --model-config): checkpoint 32, this run 64" <(
  "$strata" train --load run --save run --train-iters 8 --hidden-size 64 --global-batch-size 12 2>&1 || true)
grep -qF -- "--global-batch-size: checkpoint 6, this run 12" <(
  "$strata" train --load run --save run --train-iters 8 --hidden-size 64 --global-batch-size 12 2>&1 || true)
refused "data (--data-path" train --load run --save run --train-iters 8 --data-path "$fixtures/../../../docs/training.md"
# ... unless the schedule change is asked for; a micro-batch change keeps the data order.
"$strata" train --load run --save run --train-iters 7 --lr 0.001 --override-opt_param-scheduler \
  --micro-batch-size 2 --global-batch-size 6 > override.log
grep -qE "^  lr \.+ 0.001$" override.log
test "$(cat run/latest_checkpointed_iteration.txt)" = 7

# Training to an iteration the run has passed does nothing and says so.
refused "the run in run is already at iteration 7" train --load run --save run --train-iters 7

# The data file changed underneath: refused, not silently other data.
cp corpus.txt corpus.bak && printf 'changed' >> corpus.txt
refused "the data file" train --load run --save run --train-iters 9
refused "changed since this run read it" train --load run --save run --train-iters 9
mv corpus.bak corpus.txt

# --load of something that holds no checkpoint is an error that says what it found.
refused "--load typo: no such directory" train "${model[@]}" --load typo --save run --train-iters 9
mkdir empty
refused "--load empty: an empty directory" train "${model[@]}" --load empty --train-iters 2
refused "an HF model (config.json and safetensors): start from it with --load-hf" \
  train --load "$fixtures/qwen3_dense/model" --train-iters 2
# ... and the typo did not touch the run it would have overwritten.
test "$(cat run/latest_checkpointed_iteration.txt)" = 7

# --save into another run's folder is refused; into its own (with --load) it resumes.
refused "--save run: holds another run (a checkpoint at iteration 7)" train "${model[@]}" --train-iters 2 --save run
# A script that always passes --load D --save D starts its first run there, and says so.
"$strata" train "${model[@]}" --train-iters 2 --load fresh --save fresh > fresh.log
grep -q -- "--load fresh: no checkpoint there yet; starting a new run" fresh.log
test "$(cat fresh/latest_checkpointed_iteration.txt)" = 2

# --finetune: the weights only, any data, from iteration 1, into another folder.
"$strata" train --load run --finetune --save tuned --train-iters 2 --seq-length 16 --micro-batch-size 2 \
  --data-path corpus.txt > tuned.log
grep -q "a new run from the weights in run (--finetune)" tuned.log
grep -q "train: step 1 loss" tuned.log
refused "cannot share the folder it starts from" train --load run --finetune --save run --train-iters 9

# --load-hf: an HF model's config and weights, a new run.
"$strata" train --load-hf "$fixtures/qwen3_dense" --data-path corpus.txt --seq-length 16 --micro-batch-size 2 \
  --train-iters 2 --save from_hf > hf.log
grep -q "a new run from the HF model in" hf.log
refused "the HF config defines the model; drop --hidden-size" train --load-hf "$fixtures/qwen3_dense" --hidden-size 8

echo "resume: OK"
