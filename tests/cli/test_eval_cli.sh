#!/usr/bin/env bash
# slimlm eval from the command line: bad input gives one "error: ..." line
# and a non-zero exit (empty or unknown task list -> the known tasks; a
# missing data file -> its expected path and the MANIFEST; a malformed row
# -> <file>:<line>); a small real run prints the table and writes JSON whose
# numbers agree with --log-samples.
set -u
bin="${SLM_BIN:?}"
model="${SLM_TEST_MODEL:?}"
data="${SLM_DATA_DIR:?}"
tmp="${SLM_TEST_TMP:-/tmp}/eval_cli"
rm -rf "$tmp"
mkdir -p "$tmp"
fail=0

expect_error() { # name, pattern, args...
  local name=$1 pat=$2 err rc
  shift 2
  err=$("$bin" eval "$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then
    echo "FAIL $name: exit status $rc"; fail=1
  elif [ "$(printf '%s\n' "$err" | grep -c .)" -ne 1 ]; then
    echo "FAIL $name: more than one line on stderr:"; printf '%s\n' "$err" | head -5; fail=1
  elif ! printf '%s' "$err" | grep -Eq "^error: .*$pat"; then
    echo "FAIL $name: '$err' does not match '$pat'"; fail=1
  else
    echo "ok   $name: $err"
  fi
}

expect_error "empty task list" "no tasks given.*known tasks: boolq piqa hellaswag" "$model" -q
expect_error "unknown task" "unknown task 'hellaswagg'.*known tasks:.*groups: mmlu rom6 ai2-12" "$model" --tasks hellaswagg -q
expect_error "missing data" "$tmp/none/superglue/COPA/val.jsonl.*MANIFEST.md" "$model" --tasks copa --data-dir "$tmp/none" -q
mkdir -p "$tmp/bad/superglue/COPA"
head -n 3 "$data/superglue/COPA/val.jsonl" > "$tmp/bad/superglue/COPA/val.jsonl"
echo '{"premise": "The sun rose.", "choice1": "A.", "question": "effect", "label": 1}' >> "$tmp/bad/superglue/COPA/val.jsonl"
expect_error "malformed row" "$tmp/bad/superglue/COPA/val.jsonl:4: missing string field 'choice2'" "$model" --tasks copa --data-dir "$tmp/bad" -q
printf '{"premise": "x",\n' > "$tmp/bad/superglue/COPA/val.jsonl"
expect_error "malformed json" "$tmp/bad/superglue/COPA/val.jsonl:1: malformed JSON" "$model" --tasks copa --data-dir "$tmp/bad" -q

# A real run: COPA's first 8 documents.
out=$("$bin" eval "$model" --tasks copa --limit 8 -t 1 -q -o "$tmp/r.json" --log-samples "$tmp/s.jsonl" 2>&1)
rc=$?
echo "$out"
if [ "$rc" -ne 0 ]; then echo "FAIL real run: exit $rc"; fail=1; fi
if ! printf '%s' "$out" | grep -Eq '^\|copa +\| +8\|acc'; then echo "FAIL: no copa row in the table"; fail=1; fi
# The JSON's acc must equal the share of logged documents whose pred is gold.
n_docs=$(grep -c '"task":"copa"' "$tmp/s.jsonl")
n_right=$(grep -Ec '"gold":([0-9]+),"pred":\1,' "$tmp/s.jsonl")
acc=$(grep -Eo '"acc,none":[^,]*' "$tmp/r.json" | head -1 | cut -d: -f2 | tr -d ' ')
want=$(awk -v a="$n_right" -v b="$n_docs" 'BEGIN { printf "%.6f", a / b }')
got=$(awk -v a="$acc" 'BEGIN { printf "%.6f", a }')
echo "json acc $got, from samples $n_right/$n_docs = $want"
if [ "$n_docs" -ne 8 ] || [ "$got" != "$want" ]; then echo "FAIL: JSON acc disagrees with the samples"; fail=1; fi
if grep -q '"continuations":\[" [^ ]' "$tmp/s.jsonl"; then echo "FAIL: COPA continuation lacks its two spaces"; fail=1; fi
[ "$fail" -eq 0 ] && echo "all eval CLI checks passed"
exit "$fail"
