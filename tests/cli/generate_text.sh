#!/usr/bin/env bash
# strata generate with text: a prompt through a tokenizer, the continuation streamed as text, EOS
# from the model folder's generation_config.json, --stop; what it refuses. The qwen3_dense fixture
# (vocabulary 256) reads text with bytes_bpe (256 byte-level tokens, id = byte); where the
# qwen3_bytelevel fixture exists (gen_variant_fixtures.py), strata's greedy text and ids are HF
# transformers' own. Usage: STRATA WORK_DIR FIXTURES (tests/fixtures)
set -euo pipefail
export LC_ALL=C
strata=$1 work=$2 fixtures=$3
rm -rf "$work" && mkdir -p "$work"
bytes_bpe=(--tokenizer-type HuggingFaceTokenizer --tokenizer-model "$fixtures/text/bytes_bpe")

# decode FILE IDS: the text of comma-separated ids, as strata tokenize --decode gives it, into FILE.
decode() {
  echo "[[$2]]" > "$work/ids.json"
  "$strata" tokenize "${bytes_bpe[@]}" --input-json "$work/ids.json" --decode | jq -j '.[0]' > "$1"
}
ids_of() { sed -n 's/^tokens: //p' "$1"; }

# 1. The text printed is the prompt, then the text of the generated ids (which stderr lists).
"$strata" generate --hf "$fixtures/hf/qwen3_dense" "${bytes_bpe[@]}" --prompt "Hello" --max-new-tokens 12 \
  > "$work/out.txt" 2> "$work/err.txt"
ids=$(ids_of "$work/err.txt")
[ "$(echo "$ids" | tr , '\n' | wc -l)" -eq 12 ]
decode "$work/continuation.txt" "$ids"
{ printf 'Hello'; cat "$work/continuation.txt"; echo; } > "$work/want.txt"
cmp "$work/want.txt" "$work/out.txt"

# 2. --stop: the text ends before the first ASCII letter or digit generated after the second token.
IFS=, read -r -a id_list <<< "$ids"
for ((i = 2; i < ${#id_list[@]}; i++)); do
  id=${id_list[i]}
  if [[ $id -ge 48 && $id -le 57 ]] || [[ $id -ge 65 && $id -le 90 ]] || [[ $id -ge 97 && $id -le 122 ]]; then
    stop=$(printf "\\$(printf %03o "$id")")
    break
  fi
done
[ -n "${stop:-}" ] || { echo "no ASCII letter or digit generated to stop at: $ids"; exit 1; }
"$strata" generate --hf "$fixtures/hf/qwen3_dense" "${bytes_bpe[@]}" --prompt "Hello" --max-new-tokens 12 \
  --stop "$stop" > "$work/out.txt" 2> /dev/null
continuation=$(cat "$work/continuation.txt")
{ printf 'Hello%s\n' "${continuation%%"$stop"*}"; } > "$work/want.txt"
cmp "$work/want.txt" "$work/out.txt"

# 3. EOS from the folder's generation_config.json, and the folder's own tokenizer: generation
# stops at the first EOS (the fifth token generated above), which is not printed.
model=$work/qwen3_with_tokenizer
cp -r "$fixtures/hf/qwen3_dense/model" "$model"
cp "$fixtures/text/bytes_bpe/tokenizer.json" "$model/"
eos=${id_list[4]}
echo "{\"eos_token_id\": [100000, $eos]}" > "$model/generation_config.json"
"$strata" generate --hf "$model" --prompt "Hello" --max-new-tokens 12 > "$work/out.txt" 2> "$work/err.txt"
for ((first = 0; first < ${#id_list[@]}; first++)); do [ "${id_list[first]}" = "$eos" ] && break; done
want_ids=$(IFS=,; echo "${id_list[*]:0:first+1}")
[ "$(ids_of "$work/err.txt")" = "$want_ids" ] || { echo "EOS $eos: got $(ids_of "$work/err.txt"), want $want_ids"; exit 1; }
if [ "$first" -gt 0 ]; then decode "$work/continuation.txt" "$(IFS=,; echo "${id_list[*]:0:first}")"; else : > "$work/continuation.txt"; fi
{ printf 'Hello'; cat "$work/continuation.txt"; echo; } > "$work/want.txt"
cmp "$work/want.txt" "$work/out.txt"

# 4. Against HF transformers (where the fixture exists): greedy ids and text, with and without EOS.
hf=$fixtures/text/qwen3_bytelevel
if [ -f "$hf/reference.json" ]; then
  prompt=$(jq -r .prompt "$hf/reference.json")
  # Without EOS: a copy of the folder whose generation_config.json names none.
  free=$work/qwen3_bytelevel_no_eos
  cp -r "$hf" "$free"
  jq '.eos_token_id = null' "$hf/generation_config.json" > "$free/generation_config.json"
  jq '.eos_token_id = null' "$hf/config.json" > "$free/config.json"
  "$strata" generate --hf "$free" --prompt "$prompt" --max-new-tokens 16 > "$work/out.txt" 2> "$work/err.txt"
  [ "$(ids_of "$work/err.txt")" = "$(jq -r '.greedy_ids | join(",")' "$hf/reference.json")" ]
  { printf '%s' "$prompt"; jq -j .greedy_text "$hf/reference.json"; echo; } > "$work/want.txt"
  cmp "$work/want.txt" "$work/out.txt"
  "$strata" generate --hf "$hf" --prompt "$prompt" --max-new-tokens 16 > "$work/out.txt" 2> "$work/err.txt"
  [ "$(ids_of "$work/err.txt")" = "$(jq -r '.stopped_ids | join(",")' "$hf/reference.json")" ]
  echo "qwen3_bytelevel: greedy ids and text as HF transformers'"
fi

# 5. Refusals: text without a tokenizer, a tokenizer larger than the model, an empty --stop.
refuses() {  # refuses PATTERN ARGS...
  local pattern=$1; shift
  if "$strata" generate "$@" > /dev/null 2> "$work/err.txt"; then echo "accepted: $*"; exit 1; fi
  grep -q -- "$pattern" "$work/err.txt" || { echo "expected '$pattern', got: $(cat "$work/err.txt")"; exit 1; }
}
refuses "has no tokenizer.json or tokenizer.model; give --tokenizer-type and --tokenizer-model, or --prompt-tokens" \
  --hf "$fixtures/hf/qwen3_dense" --prompt "Hello"
refuses "bytelevel_bpe: the tokenizer's vocabulary (1024 tokens) is larger than the model's (256)" --hf "$fixtures/hf/qwen3_dense" \
  --tokenizer-type HuggingFaceTokenizer --tokenizer-model "$fixtures/text/bytelevel_bpe" --prompt "Hello"
refuses "an empty stop string" --hf "$fixtures/hf/qwen3_dense" "${bytes_bpe[@]}" --prompt "Hello" --stop ""
# --prompt-tokens needs no tokenizer and prints the ids.
out=$("$strata" generate --hf "$fixtures/hf/qwen3_dense" --prompt-tokens 1,2,3 --max-new-tokens 3)
[[ $out =~ ^tokens:\ [0-9]+,[0-9]+,[0-9]+$ ]]
echo "generate_text: OK"
