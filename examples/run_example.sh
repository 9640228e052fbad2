#!/usr/bin/env bash
# What every example's train.sh runs: `strata train` on the example's model.json, over the Megatron
# indexed dataset in tests/fixtures/text/megatron_indexed (200 documents tokenised with the
# byte-level BPE beside it, vocabulary 1024), with Megatron's flags. Sourced, not run:
#   run_example EXAMPLE_DIR [flags of the example] [-- flags given to train.sh]
# STRATA names the strata binary (default: build/strata of this repository).
run_example() {
  local here=$1 repo
  shift
  repo=$(cd "$here/../.." && pwd)
  "${STRATA:-$repo/build/strata}" train --model-config "$here/model.json" \
    --data-path "$repo/tests/fixtures/text/megatron_indexed/corpus_uint16" --split 90,10,0 \
    --tokenizer-type HuggingFaceTokenizer --tokenizer-model "$repo/tests/fixtures/text/bytelevel_bpe" \
    --seq-length 64 --micro-batch-size 8 --global-batch-size 16 --eval-iters 2 --log-interval 1 "$@"
}
