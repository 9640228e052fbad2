#!/usr/bin/env bash
# strata tokenize against what HF tokenizers and sentencepiece computed (tests/fixtures/text/*/
# reference.json): every fixture string encodes to exactly the reference ids, with and without the
# post-processor's special tokens, and the ids decode to the reference text. Then the refusals.
# Usage: STRATA WORK_DIR FIXTURES_TEXT
set -euo pipefail
strata=$1 work=$2 fixtures=$3
rm -rf "$work" && mkdir -p "$work"

# same NAME WANT GOT: the two JSON files hold the same value.
same() {
  if ! cmp -s <(jq -c . "$2") <(jq -c . "$3"); then
    echo "$1 differs:"; diff <(jq -c '.[]' "$2") <(jq -c '.[]' "$3") | head -20; exit 1
  fi
}

check() {  # check TYPE FOLDER
  local type=$1 dir=$fixtures/$2 name=$2 w=$work/$2
  mkdir -p "$w"
  jq -c '[.cases[].text]' "$dir/reference.json" > "$w/texts.json"
  jq -c '[.cases[].ids]' "$dir/reference.json" > "$w/want_ids.json"
  jq -c '[.cases[] | (.ids_with_special_tokens // .ids)]' "$dir/reference.json" > "$w/want_framed.json"
  jq -c '[.cases[].decoded]' "$dir/reference.json" > "$w/want_text.json"
  "$strata" tokenize --tokenizer-type "$type" --tokenizer-model "$dir" --input-json "$w/texts.json" \
    --no-add-special-tokens > "$w/ids.json"
  same "$name ids" "$w/want_ids.json" "$w/ids.json"
  "$strata" tokenize --tokenizer-type "$type" --tokenizer-model "$dir" --input-json "$w/texts.json" > "$w/framed.json"
  same "$name ids with special tokens" "$w/want_framed.json" "$w/framed.json"
  "$strata" tokenize --tokenizer-type "$type" --tokenizer-model "$dir" --input-json "$w/want_ids.json" --decode \
    > "$w/text.json"
  same "$name decoded text" "$w/want_text.json" "$w/text.json"
  echo "$name: $(jq length "$w/texts.json") strings match"
}

check SentencePieceTokenizer sentencepiece_bpe
for name in bytelevel_bpe llama3_split deepseek_v3_split gpt2_bytelevel suffix_bpe prefix_bpe metaspace_bpe \
            metaspace_legacy_bpe llama_style_bpe llama_legacy_bpe; do
  if [ -f "$fixtures/$name/reference.json" ]; then check HuggingFaceTokenizer "$name"; fi
done

# bytes_bpe is hand-made: 256 byte-level tokens, id = byte, no merges.
echo '["h\u00e9 <|x|>", ""]' > "$work/bytes.json"
out=$("$strata" tokenize --tokenizer-type HuggingFaceTokenizer --tokenizer-model "$fixtures/bytes_bpe/tokenizer.json" \
        --input-json "$work/bytes.json" | jq -c .)
[ "$out" = '[[104,195,169,32,60,124,120,124,62],[]]' ] || { echo "bytes_bpe: $out"; exit 1; }

# Refusals name the bad value and what was expected.
refuses() {  # refuses PATTERN ARGS...: strata fails and says PATTERN
  local pattern=$1; shift
  if "$strata" tokenize "$@" > /dev/null 2> "$work/err.txt"; then echo "accepted: $*"; exit 1; fi
  grep -q -- "$pattern" "$work/err.txt" || { echo "expected '$pattern', got: $(cat "$work/err.txt")"; exit 1; }
}
echo '["a", 3]' > "$work/mixed.json"
refuses "element 1 is 3, expected a string" --tokenizer-type HuggingFaceTokenizer \
  --tokenizer-model "$fixtures/bytelevel_bpe" --input-json "$work/mixed.json"
echo '[[1, 99999]]' > "$work/far.json"
refuses "element 0: token id 99999 is not in the tokenizer's vocabulary (ids run from 0 to 1023)" \
  --tokenizer-type HuggingFaceTokenizer --tokenizer-model "$fixtures/bytelevel_bpe" --input-json "$work/far.json" --decode
refuses "--tokenizer-type 'GPT2BPETokenizer' is not supported" --tokenizer-type GPT2BPETokenizer \
  --tokenizer-model "$fixtures/bytelevel_bpe" --input-json "$work/bytes.json"
jq '.model.type = "Unigram"' "$fixtures/bytelevel_bpe/tokenizer.json" > "$work/unigram.json"
refuses "model type 'Unigram' is not supported" --tokenizer-type HuggingFaceTokenizer \
  --tokenizer-model "$work/unigram.json" --input-json "$work/bytes.json"
refuses "the folder has no tokenizer.model" --tokenizer-type SentencePieceTokenizer \
  --tokenizer-model "$fixtures/bytelevel_bpe" --input-json "$work/bytes.json"
echo "tokenize: OK"
