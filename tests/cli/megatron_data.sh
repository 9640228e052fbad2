#!/usr/bin/env bash
# Megatron indexed datasets end to end (issue 21 item 4): `strata preprocess` writes the fixture's
# .bin/.idx byte for byte with any worker count; `strata train` trains on them (loss falls), on a
# weighted blend with --eod-mask-loss, refuses a truncated copy and an ambiguous --data-path by
# name, and a resumed run restores the data and continues with the same samples.
# Usage: STRATA WORK_DIR TEXT_FIXTURES
set -euo pipefail
strata=$1 work=$2 fixtures=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"
data=$fixtures/megatron_indexed
tokenizer=(--tokenizer-type HuggingFaceTokenizer --tokenizer-model "$fixtures/bytelevel_bpe")

source "$(dirname "$0")/expect_refusal.sh"

# preprocess: Megatron's bytes, one worker or three.
for workers in 1 3; do
  "$strata" preprocess --input "$data/documents.jsonl" --json-keys text "${tokenizer[@]}" --output-prefix "w$workers" \
    --append-eod --workers "$workers" > preprocess.log 2> progress.log
  cmp "w${workers}_text_document.bin" "$data/corpus_uint16.bin"
  cmp "w${workers}_text_document.idx" "$data/corpus_uint16.idx"
  grep -q "200 documents" progress.log
done

model=(--hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --vocab-size 1024 --seq-length 32 --micro-batch-size 8)

# Training on the fixture: the loss falls over 40 steps.
"$strata" train "${model[@]}" --data-path "$data/corpus_uint16" --train-iters 40 --lr 0.01 --eval-iters 1 > train.log
grep -q "data: Megatron indexed data .*corpus_uint16 (200 documents, 15005 uint16 tokens), --split 969,30,1" train.log
read -r first last < <(grep "^train:" train.log | sed -E 's/.*step 1 loss ([0-9.]+).*step 40 loss ([0-9.]+).*/\1 \2/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.8) }' || { echo "loss did not fall: $first -> $last"; exit 1; }
grep -q "^held-out: loss" train.log

# A weighted blend of both dtypes with --eod-mask-loss; its identity is saved with the checkpoint.
"$strata" train "${model[@]}" --data-path 0.3 "$data/corpus_uint16" 0.7 "$data/corpus_int32" --split 90,10,0 \
  --eod-mask-loss --eod-token-id 1021 --train-iters 2 --save blend > blend.log
grep -qE '"kind": ?"megatron"' blend/iter_0000002/state.json
grep -qE '"eod_mask_loss": ?true' blend/iter_0000002/state.json
grep -qE '"weight": ?0.7' blend/iter_0000002/state.json

# The tokenizer gives the vocabulary (1024) and the EOD id (1021, its EOS) when the flags do not.
"$strata" train --hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --seq-length 32 --micro-batch-size 8 \
  --data-path "$data/corpus_uint16" "${tokenizer[@]}" --eod-mask-loss --train-iters 1 --save tok > tok.log
grep -qE '"eod_token_id": ?1021' tok/iter_0000001/state.json
grep -qE '"vocab_size": ?1024' tok/iter_0000001/state.json

# Refused by name: a truncated copy, a prefix with one file, an ambiguous path, a missing EOD id.
cp "$data/corpus_uint16.idx" cut.idx
head -c 30000 "$data/corpus_uint16.bin" > cut.bin
refused "cut.bin: 30000 bytes, but cut.idx describes 30010 (15005 uint16 tokens in 200 sequences): the .bin is truncated" \
  train "${model[@]}" --data-path cut --train-iters 2
cp "$data/corpus_uint16.bin" lonely.bin
refused "lonely.bin exists but lonely.idx does not" train "${model[@]}" --data-path lonely --train-iters 2
cp "$data/corpus_uint16.idx" both.idx && cp "$data/corpus_uint16.bin" both.bin && echo text > both
refused "both the file both and the indexed dataset both.bin/.idx exist" train "${model[@]}" --data-path both --train-iters 2
refused "--eod-mask-loss: give the end-of-document token's id with --eod-token-id" \
  train "${model[@]}" --data-path "$data/corpus_uint16" --eod-mask-loss --train-iters 2
refused "--eod-mask-loss: applies to Megatron indexed datasets" train "${model[@]}" --data-path both --data-format text \
  --eod-mask-loss --train-iters 2

# Resuming restores the data and its position: 4 steps, then on to 6, equal to 6 in one go.
common=(--eval-iters 0 --lr 0.005 --lr-decay-iters 6 --seed 5)
"$strata" train "${model[@]}" "${common[@]}" --data-path "$data/corpus_uint16" --train-iters 4 --save run > first.log
"$strata" train --load run --save run --train-iters 6 > resumed.log
grep -q "resumes run at iteration 4" resumed.log
grep -q "data: Megatron indexed data .*corpus_uint16" resumed.log
"$strata" train "${model[@]}" "${common[@]}" --data-path "$data/corpus_uint16" --train-iters 6 > whole.log
grep "^train:" whole.log | grep -o "step 6 loss [0-9.]*" > whole_loss.txt
grep "^train:" resumed.log | grep -o "step 6 loss [0-9.]*" > resumed_loss.txt
cmp whole_loss.txt resumed_loss.txt
# Another split contradicts the run; a changed .bin is refused.
refused "data (--data-path" train --load run --save run --train-iters 8 --split 50,50,0
cp "$data/corpus_uint16.idx" moved.idx && cp "$data/corpus_uint16.bin" moved.bin
"$strata" train --load run --save run --train-iters 7 --data-path moved > moved.log  # the same data, moved
printf 'xx' >> moved.bin
refused "changed since this run read it" train --load run --save run --train-iters 8  # run/ now reads moved

echo "megatron_data: OK"
