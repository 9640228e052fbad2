#!/usr/bin/env bash
# Every example under examples/ trains as written (its train.sh, with only --metrics added): the
# loss of its last step is below its first, the held-out loss is below the untrained model's
# ln(vocabulary), and the DeepSeek-V3.2-like example logs a falling MTP loss too.
# Usage: STRATA REPO WORK_DIR
set -euo pipefail
strata=$(realpath "$1") repo=$(realpath "$2") work=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"

# first_last METRICS FIELD: the field's value (a number, or the first entry of a list) at the
# first and the last logged step.
first_last() {
  jq -r --arg f "$2" 'select(.step != null and .loss != null) | .[$f] | if type == "array" then .[0] else . end' "$1" |
    sed -n '1p;$p'
}

examples=0
for script in "$repo"/examples/*/train.sh; do
  name=$(basename "$(dirname "$script")")
  STRATA=$strata "$script" --metrics "$work/$name.jsonl" > "$name.out" 2>&1 ||
    { echo "$name: train.sh failed:"; tail -20 "$name.out"; exit 1; }
  read -r first last < <(first_last "$name.jsonl" loss | paste -sd' ')
  awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || { echo "$name: loss $first -> $last did not fall"; exit 1; }
  held_out=$(grep -oE '^held-out: loss [0-9.]+' "$name.out" | awk '{print $3}')
  awk -v l="$held_out" 'BEGIN { exit !(l < log(1024)) }' ||
    { echo "$name: held-out loss $held_out is not below ln(1024)"; exit 1; }
  echo "$name: loss $first -> $last, held-out $held_out"
  if grep -q '"mtp_num_layers": *[1-9]' "$repo/examples/$name/model.json"; then
    read -r first last < <(first_last "$name.jsonl" mtp_losses | paste -sd' ')
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || { echo "$name: MTP loss $first -> $last did not fall"; exit 1; }
    echo "$name: MTP loss $first -> $last"
  fi
  examples=$((examples + 1))
done
[ "$examples" -ge 4 ] || { echo "expected at least 4 examples, found $examples"; exit 1; }
echo "examples: OK ($examples trained)"
