#!/usr/bin/env bash
# HellaSwag zero-shot scoring speed: slimlm eval vs llama.cpp (llama-cpp-python)
# on the same GGUF, the same first N tasks and the same thread count, in one
# command. Prints each side's time per task and the ratio.
#   bench/bench_eval.sh [MODEL] [N=1000] [THREADS=2]
# env: SLM_EVAL_FLAGS (default --dequantize: slimlm computes in fp32 from the
# file's weights, as its baselines are measured; empty keeps the quantised
# weights as llama.cpp does), LLAMA_MODE (full | shared).
# Needs build-eval/slimlm (or SLM_BIN) and the Python package llama-cpp-python.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
model=${1:-$HOME/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf}
n=${2:-1000}
threads=${3:-2}
bin=${SLM_BIN:-$root/build-eval/slimlm}
data=${SLM_DATA_DIR:-$root/../shared/data}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "HellaSwag, first $n tasks, $threads threads, $(basename "$model")"
t0=$(date +%s.%N)
flags=${SLM_EVAL_FLAGS---dequantize}
echo "slimlm eval flags: ${flags:-(none: quantised weights)}"
# shellcheck disable=SC2086
"$bin" eval "$model" $flags --tasks hellaswag --limit "$n" -t "$threads" -q -d "$data" -o "$out/r.json" > "$out/table.txt"
t1=$(date +%s.%N)
slm=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
grep -E '^\|(hellaswag| )' "$out/table.txt" | sed 's/^/  /'
tok=$(grep -Eo '"tokens_decoded":[[:space:]0-9.e+]*' "$out/r.json" | head -1 | grep -Eo '[0-9.e+]+$')
echo "slimlm: $n tasks in $slm s ($(awk -v s="$slm" -v n="$n" 'BEGIN { printf "%.3f", s / n }') s/task, model load included), $tok tokens decoded"

llama_line=$(python3 "$here/bench_eval_llamacpp.py" "$model" --data-dir "$data" --limit "$n" --threads "$threads" --mode "${LLAMA_MODE:-full}")
echo "$llama_line"
llama=$(printf '%s' "$llama_line" | grep -Eo 'in [0-9.]+ s' | grep -Eo '[0-9.]+')
echo "speed-up slimlm vs llama.cpp: $(awk -v a="$llama" -v b="$slm" 'BEGIN { printf "%.2fx", a / b }')"
