#!/usr/bin/env bash
# Every damaged checkpoint in tests/bad/ (made by tools/make_bad_inputs.py),
# plus the real model truncated inside each of its sections, must give one
# line "error: <file>: <what>" on stderr and a non-zero exit: no crash, no
# signal, no sanitizer report. The good_* / hf_good_* controls must load.
set -u
bin="${SLM_BIN:?}"
src="${SLM_SOURCE_DIR:?}"
tmp="${SLM_TEST_TMP:-/tmp}/bad_input"
mkdir -p "$tmp"
fail=0
n=0

check_bad() { # path, expected name fragment
  local path=$1 frag=$2 err rc lines
  err=$("$bin" info "$path" 2>&1 >/dev/null)
  rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  n=$((n + 1))
  if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then
    echo "FAIL $path: exit status $rc (want 1..127)"; fail=1
  elif [ "$lines" -ne 1 ]; then
    echo "FAIL $path: $lines lines on stderr (want 1):"; printf '%s\n' "$err" | head -n 5; fail=1
  elif ! printf '%s' "$err" | grep -q "^error: .*$frag.*: "; then
    echo "FAIL $path: not 'error: <file>: <what>': $err"; fail=1
  else
    echo "ok   $(basename "$path"): $err"
  fi
}

for f in "$src"/tests/bad/*.gguf; do
  case $(basename "$f") in good_*) continue ;; esac
  check_bad "$f" "$(basename "$f")"
done
for d in "$src"/tests/bad/hf_*/; do
  d=${d%/}
  case $(basename "$d") in hf_good_*) continue ;; esac
  check_bad "$d" "$(basename "$d")"
done

# The real model cut inside the header, the metadata, the tensor infos and the data.
model="${SLM_TEST_MODEL:-}"
if [ -f "$model" ]; then
  for cut in 3 20 4096 600000 1700000 1780000 1800000 50000000 98362400; do
    t="$tmp/truncated_$cut.gguf"
    head -c "$cut" "$model" > "$t"
    check_bad "$t" "truncated_$cut.gguf"
  done
else
  echo "FAIL default model missing: $model (scripts/fetch-model.sh)"; fail=1
fi

for good in "$src"/tests/bad/good_tiny.gguf "$src"/tests/bad/hf_good_tiny; do
  if ! out=$("$bin" info "$good" 2>&1); then
    echo "FAIL control $good did not load: $out"; fail=1
  else
    echo "ok   control $(basename "$good") loads"
  fi
done
echo "$n damaged inputs checked"
exit $fail
