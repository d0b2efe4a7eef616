#!/usr/bin/env bash
# slimlm prune through the binary on SmolLM2-135M: every truncation config
# writes a 15-block GGUF that slimlm reads back with the kept blocks the
# JSON report lists; safetensors output too; every usage error is one line
# "error: ..." with exit status 1 and leaves no output behind.
set -u
bin="${SLM_BIN:?}"
model="${SLM_TEST_MODEL:?}"
tmp="${SLM_TEST_TMP:-/tmp}/prune"
rm -rf "$tmp"
mkdir -p "$tmp"
. "$(dirname "$0")/lib.sh"

for s in max-gap input output middle both; do
  out="$tmp/$s.gguf"
  if ! "$bin" prune "$model" --drop 15 --strategy "$s" -o "$out" --output "$tmp/$s.json" -q -t 2 > "$tmp/$s.txt" 2>&1; then
    echo "FAIL prune $s:"; cat "$tmp/$s.txt"; fail=1; continue
  fi
  blocks=$("$bin" info "$out" 2>/dev/null | sed -n 's/^blocks kept *\([0-9]*\) of .*/\1/p')
  kept=$(tr -d ' \t\n' < "$tmp/$s.json" | grep -Eo '"kept_blocks":\[[0-9,]*\]')
  if [ "$blocks" != 15 ] || ! printf '%s' "$kept" | grep -q '^"kept_blocks":\[0,.*,29\]$'; then
    echo "FAIL $s: info says '$blocks' blocks, report $kept"; fail=1
  else
    echo "ok   $s: 15 blocks, $kept"
  fi
done
if "$bin" prune "$model" --drop 10 -o "$tmp/hf" -q -t 2 > /dev/null 2>&1 && [ -f "$tmp/hf/model.safetensors" ] &&
   grep -q '"num_hidden_layers":[[:space:]]*20' "$tmp/hf/config.json"; then
  echo "ok   safetensors output with 20 layers"
else
  echo "FAIL safetensors output"; fail=1
fi

bad "unknown pruning strategy 'sideways'; known: max-gap" "$bin" prune "$model" --drop 3 --strategy sideways -o "$tmp/x.gguf"
bad "can drop 0..28" "$bin" prune "$model" --drop 29 -o "$tmp/x.gguf"
bad "--drop K is required" "$bin" prune "$model" -o "$tmp/x.gguf"
bad "-o OUT is required" "$bin" prune "$model" --drop 3
bad "missing data file\|MANIFEST\|not found\|cannot" "$bin" prune "$model" --drop 3 --strategy block-influence --calib text:nonexistent.txt -o "$tmp/x.gguf" -q
if [ -e "$tmp/x.gguf" ]; then echo "FAIL a failed prune left $tmp/x.gguf"; fail=1; fi
rm -rf "$tmp"
exit $fail
