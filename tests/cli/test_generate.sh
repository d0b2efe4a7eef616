#!/usr/bin/env bash
# slimlm generate through the binary on SmolLM2: greedy decoding answers a
# chat question as llama.cpp does (greedy continuation "The capital of France
# is Paris." -- llama-cpp-python gives the same with temperature 0); the same
# seed gives the same text, another seed another text; usage and load errors
# are one "error: ..." line with a non-zero exit.
set -u
bin="${SLM_BIN:?}"
model="${SLM_TEST_MODEL:?}"
fail=0
chat=$'<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n'

out=$("$bin" generate "$model" -p "$chat" -n 20 --temp 0 -t 2 -q 2>/dev/null)
rc=$?
if [ $rc -ne 0 ] || [ "$out" != "The capital of France is Paris." ]; then
  echo "FAIL greedy: rc=$rc output '$out'"; fail=1
else
  echo "ok   greedy: $out"
fi

a=$("$bin" generate "$model" -p "Once upon a time" -n 24 --seed 5 -t 2 -q 2>/dev/null)
b=$("$bin" generate "$model" -p "Once upon a time" -n 24 --seed 5 -t 2 -q 2>/dev/null)
c=$("$bin" generate "$model" -p "Once upon a time" -n 24 --seed 6 -t 2 -q 2>/dev/null)
if [ -z "$a" ] || [ "$a" != "$b" ]; then echo "FAIL same seed: '$a' vs '$b'"; fail=1; else echo "ok   same seed: $a"; fi
if [ "$a" = "$c" ]; then echo "FAIL different seeds gave the same text"; fail=1; else echo "ok   other seed: $c"; fi

err=$("$bin" generate "$model" -p "hi" -n 10 --ctx 4 2>&1 >/dev/null); rc=$?
if [ $rc -eq 0 ] || [ "$(printf '%s\n' "$err" | grep -c .)" -ne 1 ] || ! printf '%s' "$err" | grep -q '^error: .*context'; then
  echo "FAIL context too small: rc=$rc '$err'"; fail=1; else echo "ok   $err"; fi
err=$("$bin" generate /nonexistent.gguf -p "hi" 2>&1 >/dev/null); rc=$?
if [ $rc -eq 0 ] || ! printf '%s' "$err" | grep -q '^error: /nonexistent.gguf: '; then
  echo "FAIL missing model: rc=$rc '$err'"; fail=1; else echo "ok   $err"; fi
err=$("$bin" generate "$model" 2>&1 >/dev/null); rc=$?
if [ $rc -eq 0 ] || ! printf '%s' "$err" | grep -q '^error: '; then
  echo "FAIL no prompt: rc=$rc '$err'"; fail=1; else echo "ok   $err"; fi
exit $fail
