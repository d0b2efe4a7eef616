#!/usr/bin/env bash
# slimlm tokenize: ids match the references (values from
# tests/golden/tok_smollm2_cases.tsv and llama.cpp), pieces print, bad input gives one
# "error:" line and a non-zero exit.
set -u
bin=${SLM_BIN:?}; model=${SLM_TEST_MODEL:?}; tmp=${SLM_TEST_TMP:-/tmp}
fail=0
check() { if [ "$2" != "$3" ]; then echo "FAIL $1: got '$2' want '$3'"; fail=1; else echo "ok   $1"; fi; }

check "ids" "$($bin tokenize "$model" -p "Hello world 1990 and  12345" --ids)" "19556 905 216 33 41 41 32 284 256 33 34 35 36 37"
check "parse-special" "$($bin tokenize "$model" -p "<|im_start|>user hi" --ids --parse-special)" "1 4093 15876"
check "no parse-special" "$($bin tokenize "$model" -p "<|im_start|>user hi" --ids)" "44 108 306 79 3738 108 46 4093 15876"
printf 'one\ntwo 2\n' > "$tmp/tok_in.txt"
check "file" "$($bin tokenize "$model" --file "$tmp/tok_in.txt" --ids)" "$($bin tokenize "$model" -p $'one\ntwo 2\n' --ids)"
check "pieces" "$($bin tokenize "$model" -p "Hi" | tr -s ' ')" " 26843 -> 'Hi'"

printf 'GGUF\x03\x00\x00\x00garbage' > "$tmp/tok_bad.gguf"
out=$($bin tokenize "$tmp/tok_bad.gguf" -p x 2>&1); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "^error: .*tok_bad.gguf" \
  && echo "ok   bad gguf: $out" || { echo "FAIL bad gguf: rc $rc: $out"; fail=1; }
mkdir -p "$tmp/tok_bad_dir"; echo '{"model": {"type": "Unigram"}}' > "$tmp/tok_bad_dir/tokenizer.json"
out=$($bin tokenize "$tmp/tok_bad_dir" -p x 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "^error: .*tokenizer.json: model type 'Unigram' is not supported" \
  && echo "ok   unsupported: $out" || { echo "FAIL unsupported: rc $rc: $out"; fail=1; }
out=$($bin tokenize "$model" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "ok   no text: $out" || { echo "FAIL no text accepted"; fail=1; }
exit $fail
