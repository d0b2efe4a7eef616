#!/usr/bin/env bash
# Does LLM-ROM's MAC reduction turn into prefill speed? Compresses MODEL with
# `slimlm rom` (BUDGET, BLOCKS), then times prefill (512-token chunk) and
# decode of the original (fp32) and the compressed model with
# bench/bench_forward in the same command, same threads, and prints the
# speed-ups against the MAC reduction (#MACs/token at context 1, linears +
# lm head). Goal (issue #5): prefill speed-up >= 0.8 x the MAC reduction.
#
#   bench/run_rom_speed.sh [BUILD_DIR]     (default: build)
#   env: MODEL (SmolLM2 Q4_1), BUDGET (0.5), BLOCKS (last:30), THREADS (2), REPS (5),
#        CALIB_BATCH (32), WORK (/tmp/slimlm-rom-speed),
#        COMPRESSED (time this already-compressed model instead of compressing)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
model=${MODEL:-$HOME/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf}
budget=${BUDGET:-0.5}
blocks=${BLOCKS:-last:30}
threads=${THREADS:-2}
reps=${REPS:-5}
work=${WORK:-/tmp/slimlm-rom-speed}
mkdir -p "$work"
out=${COMPRESSED:-$work/rom_${budget}_${blocks#last:}.gguf}
if [ ! -s "$out" ]; then
  echo "compressing: rom --budget $budget --blocks $blocks ..." >&2
  "$build/slimlm" rom "$model" --budget "$budget" --blocks "$blocks" --batch "${CALIB_BATCH:-32}" \
    --calib text:corpus/gutenberg-nltk/austen-emma.txt --no-loss -q -t "$threads" -o "$out" > "$work/rom.txt"
fi
run() { OMP_NUM_THREADS=$threads "$build/bench/bench_forward" "$1" --threads "$threads" --reps "$reps" --json; }
echo "timing the original and the compressed model ..." >&2
a=$(run "$model")
b=$(run "$out")
field() { printf '%s' "$1" | grep -Eo "\"$2\":[0-9.e+-]+" | cut -d: -f2; }
awk -v pa="$(field "$a" prefill_tok_s)" -v pb="$(field "$b" prefill_tok_s)" \
    -v da="$(field "$a" decode_tok_s)" -v db="$(field "$b" decode_tok_s)" \
    -v ma="$(field "$a" macs_per_token)" -v mb="$(field "$b" macs_per_token)" \
    -v wa="$(field "$a" weight_mib)" -v wb="$(field "$b" weight_mib)" -v budget="$budget" -v blocks="$blocks" 'BEGIN {
  printf "LLM-ROM budget %s, blocks %s, %s threads\n", budget, blocks, ENVIRON["THREADS"] ? ENVIRON["THREADS"] : 2
  printf "%-12s %14s %14s %12s %12s\n", "model", "prefill tok/s", "decode tok/s", "MACs/token", "weights MiB"
  printf "%-12s %14.1f %14.1f %12.2fM %12.1f\n", "original", pa, da, ma / 1e6, wa
  printf "%-12s %14.1f %14.1f %12.2fM %12.1f\n", "compressed", pb, db, mb / 1e6, wb
  red = ma / mb
  printf "MAC reduction %.3fx; prefill speed-up %.3fx = %.2f of it (goal >= 0.8); decode speed-up %.3fx\n",
         red, pb / pa, (pb / pa) / red, db / da
}'
