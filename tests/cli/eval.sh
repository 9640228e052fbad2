#!/usr/bin/env bash
# strata eval end to end (issue 21 item 6): loss and perplexity on the held-out data strata train
# reads (a text file's last 5 %, the valid split of indexed datasets under --split), equal to the
# held-out loss training printed on the same batches; --json; what it refuses, by name.
# Usage: STRATA WORK_DIR FIXTURES (tests/fixtures)
set -euo pipefail
strata=$1 work=$2 fixtures=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"
corpus=$fixtures/text/megatron_indexed/corpus_uint16
bpe=(--tokenizer-type HuggingFaceTokenizer --tokenizer-model "$fixtures/text/bytelevel_bpe")

source "$(dirname "$0")/expect_refusal.sh"

jq -r .text "$fixtures/text/megatron_indexed/documents.jsonl" > text.txt

# 1. A text file: eval over the batches training evaluated on gives training's held-out loss.
"$strata" train --data-path text.txt --seq-length 32 --micro-batch-size 4 --eval-iters 3 --train-iters 5 --save bytes \
  > bytes.log 2>&1
trained=$(sed -n 's/^held-out: loss \([0-9.]*\) .*/\1/p' bytes.log)
"$strata" eval --load bytes --data-path text.txt --eval-iters 3 > eval.txt
grep -q "^eval: loss $trained perplexity [0-9.]* over 372 tokens (12 sequences of 32, text.txt" eval.txt \
  || { echo "training's held-out loss $trained"; cat eval.txt; exit 1; }
# Without --eval-iters: every held-out sequence once; the perplexity is exp(loss).
"$strata" eval --load bytes --data-path text.txt --json > eval.json
jq -e '.seq_length == 32 and .tokens == .sequences * 31 and .sequences > 12' eval.json > /dev/null
jq -e '. as $r | (($r.perplexity - ($r.loss | exp)) | fabs) < 1e-9 * $r.perplexity' eval.json > /dev/null

# 2. Indexed data with a tokenizer: the run's tokenizer comes with its checkpoint, --split picks the
#    held-out documents (0,100,0: all of them).
"$strata" train --hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --seq-length 32 --micro-batch-size 8 \
  --data-path "$corpus" "${bpe[@]}" --train-iters 3 --save indexed > indexed.log 2>&1
trained=$(sed -n 's/^held-out: loss \([0-9.]*\) .*/\1/p' indexed.log)
"$strata" eval --load indexed --data-path "$corpus" > eval.txt
grep -q "^eval: loss $trained perplexity .* over 496 tokens (16 sequences of 32, Megatron indexed data" eval.txt \
  || { echo "training's held-out loss $trained"; cat eval.txt; exit 1; }
"$strata" eval --load indexed --data-path "$corpus" --split 0,100,0 --json > all.json
jq -e '.sequences == 468 and .tokens == 468 * 31' all.json > /dev/null || { cat all.json; exit 1; }

# 3. An HF model folder.
"$strata" eval --hf "$fixtures/hf/qwen3_dense" --data-path text.txt --seq-length 64 --micro-batch-size 2 > eval.txt
grep -q "^eval: loss [0-9.]* perplexity [0-9.]* over [0-9]* tokens" eval.txt

# 4. Refusals.
refused "give --data-path: the held-out data" eval --load bytes
refused "give exactly one of --load (strata checkpoint) and --hf (HF model folder)" eval --data-path text.txt
refused "--data-path missing.txt: no such file, and no indexed dataset missing.txt.bin/.idx" \
  eval --load bytes --data-path missing.txt
refused "the tokenizer's vocabulary is 1024 tokens, more than the model's vocab_size 256" \
  eval --hf "$fixtures/hf/qwen3_dense" --data-path text.txt "${bpe[@]}"
refused "--data-path text.txt: text, which strata reads as bytes (vocabulary 256), but the model reads tokens of" \
  eval --load indexed --data-path text.txt
refused "is outside the vocabulary" eval --load bytes --data-path "$corpus"
refused "the held-out split holds no sequence of --seq-length 4096" eval --load bytes --data-path text.txt --seq-length 4096
echo "eval: OK"
