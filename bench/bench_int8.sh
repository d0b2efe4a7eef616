#!/usr/bin/env bash
# Does int8 make models faster and smaller? fp32 vs int8 in one command, on
# SmolLM2-135M and on a ROM-compressed version of it, same threads:
# prefill tokens/s (a 512-token chunk), decode tokens/s (token by token
# from an empty cache) with bench/bench_forward, weight bytes as held in
# memory and file bytes, and the ratios against the goals of issue #8
# (prefill >= 2x, decode >= 2.5x, bytes >= 3.5x smaller).
#
# Models (made once in WORK, reused):
#   fp32           MODEL written as an F32 GGUF (slimlm's fp32 path reads it zero-copy)
#   int8           slimlm quantize --int8 --outlier-threshold 0 (pure int8, int8 lm head)
#   int8 fp32-head the same with --keep-lm-head (the lm head stays float)
#   LLM.int8       slimlm quantize --int8 (threshold 6, at most 2% fp32 columns per input)
#   int8-g64       slimlm quantize --int8 --outlier-threshold 0 --act-group 64 (grouped activation scales)
#   int8-g64-embd8 the same with --embd int8 (the token embedding is the int8 lm head's rows)
#   rom fp32       slimlm rom MODEL --budget 0.8 --blocks last:8 --batch 32 (ROM_MODEL to reuse one)
#   rom int8       that quantised (low-rank factors int8)
#   rom int8-g64-embd8  that quantised as int8-g64-embd8 (the recommended mode)
# Each timing is bench_forward's best of REPS runs; the machine's load
# average before and after is printed, since on a shared machine it decides
# the numbers.
#
#   bench/bench_int8.sh [BUILD_DIR]      (default: build)
#   env: MODEL (SmolLM2 Q4_1), ROM_MODEL (made if unset), THREADS (2), PREFILL (512), DECODE (64),
#        REPS (3), WORK (/tmp/slimlm-int8-bench), SKIP (space-separated labels to leave out: neither
#        made nor timed), ACT_GROUP (64: the grouped model's G)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
model=${MODEL:-$HOME/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf}
threads=${THREADS:-2}
prefill=${PREFILL:-512}
decode=${DECODE:-64}
reps=${REPS:-3}
work=${WORK:-/tmp/slimlm-int8-bench}
skip=" ${SKIP:-} "
mkdir -p "$work"
slimlm="$build/slimlm"

want() { case "$skip" in *" $1 "*) return 1 ;; esac; }
make_once() { # out command...
  local out=$1
  shift
  if [ ! -s "$out" ]; then
    echo "making $(basename "$out") ..." >&2
    "$@" > "$out.log" 2>&1 || { cat "$out.log" >&2; exit 1; }
  fi
}
make_once "$work/fp32.gguf" "$slimlm" convert "$model" -o "$work/fp32.gguf" --dtype f32 -q
make_once "$work/int8.gguf" "$slimlm" quantize "$model" --int8 --outlier-threshold 0 -o "$work/int8.gguf" -q -t "$threads"
want int8-fp32head && make_once "$work/int8_head.gguf" "$slimlm" quantize "$model" --int8 --outlier-threshold 0 --keep-lm-head \
  -o "$work/int8_head.gguf" -q -t "$threads"
want llm.int8 && make_once "$work/llmint8.gguf" "$slimlm" quantize "$model" --int8 -o "$work/llmint8.gguf" -q -t "$threads"
group=${ACT_GROUP:-64}
want int8-g$group && make_once "$work/int8_g$group.gguf" "$slimlm" quantize "$model" --int8 --outlier-threshold 0 \
  --act-group "$group" -o "$work/int8_g$group.gguf" -q -t "$threads"
want "int8-g$group-embd8" && make_once "$work/int8_g${group}_embd8.gguf" "$slimlm" quantize "$model" --int8 \
  --outlier-threshold 0 --act-group "$group" --embd int8 -o "$work/int8_g${group}_embd8.gguf" -q -t "$threads"
rom=${ROM_MODEL:-$work/rom.gguf}
want rom-fp32 && make_once "$rom" "$slimlm" rom "$model" --budget 0.8 --blocks last:8 --batch 32 -q -t "$threads" -o "$rom"
want rom-int8 && make_once "$work/rom_int8.gguf" "$slimlm" quantize "$rom" --int8 --outlier-threshold 0 -o "$work/rom_int8.gguf" -q \
  -t "$threads"
want "rom-int8-g$group-embd8" && make_once "$work/rom_int8_g${group}_embd8.gguf" "$slimlm" quantize "$rom" --int8 \
  --outlier-threshold 0 --act-group "$group" --embd int8 -o "$work/rom_int8_g${group}_embd8.gguf" -q -t "$threads"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
run() { # label file
  case "$skip" in *" $1 "*) return ;; esac
  echo "timing $1 ..." >&2
  local j
  j=$(OMP_NUM_THREADS=$threads "$build/bench/bench_forward" "$2" --threads "$threads" --prefill "$prefill" \
        --decode "$decode" --reps "$reps" --json)
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$(stat -c %s "$2")" "$j" >> "$work/results.tsv"
}
: > "$work/results.tsv"
run fp32 "$work/fp32.gguf"
run int8 "$work/int8.gguf"
run int8-fp32head "$work/int8_head.gguf"
run llm.int8 "$work/llmint8.gguf"
run "int8-g$group" "$work/int8_g$group.gguf"
run "int8-g$group-embd8" "$work/int8_g${group}_embd8.gguf"
run rom-fp32 "$rom"
run rom-int8 "$work/rom_int8.gguf"
run "rom-int8-g$group-embd8" "$work/rom_int8_g${group}_embd8.gguf"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work/results.tsv" "$threads" "$prefill" "$decode" "$load_before" "$load_after" "$(nproc)" <<'PY'
import json, sys
path, threads, T, N, lb, la, ncpu = sys.argv[1:8]
rows = []
for line in open(path):
    label, f, size, js = line.rstrip("\n").split("\t", 3)
    rows.append((label, int(size), json.loads(js)))
r = {label: (size, j) for label, size, j in rows}
print(f"\nint8 vs fp32, {threads} threads, prefill {T}-token chunk, decode {N} tokens, best of runs")
print(f"load average {lb} before, {la} after, on {ncpu} CPUs (a load above {ncpu} slows every number)\n")
print(f"{'model':<20}{'prefill tok/s':>14}{'decode tok/s':>14}{'weights MiB':>13}{'file MiB':>10}")
for label, size, j in rows:
    print(f"{label:<20}{j['prefill_tok_s']:>14.1f}{j['decode_tok_s']:>14.1f}{j['weight_mib']:>13.1f}{size / 1048576:>10.1f}")
def ratios(a, b, name):
    if a not in r or b not in r:
        return
    (sa, ja), (sb, jb) = r[a], r[b]
    p = jb["prefill_tok_s"] / ja["prefill_tok_s"]
    d = jb["decode_tok_s"] / ja["decode_tok_s"]
    w = ja["weight_mib"] / jb["weight_mib"]
    f = sa / sb
    mark = lambda v, g: "ok" if v >= g else "below"
    print(f"{name:<31} prefill {p:.2f}x (goal 2, {mark(p, 2)})  decode {d:.2f}x (goal 2.5, {mark(d, 2.5)})  "
          f"bytes held {w:.2f}x, file {f:.2f}x (goal 3.5, {mark(max(w, f), 3.5)})")
print()
ratios("fp32", "int8", "int8 / fp32")
ratios("fp32", "int8-fp32head", "int8 (float head) / fp32")
ratios("fp32", "llm.int8", "LLM.int8 / fp32")
for label, _, _ in rows:
    if label.startswith("rom-int8-g"):
        ratios("rom-fp32", label, f"ROM int8 g{label[10:-6]} int8 embd / ROM fp32")
        ratios("fp32", label, f"ROM int8 g{label[10:-6]} int8 embd / fp32")
    elif label.startswith("int8-g") and label.endswith("-embd8"):
        ratios("fp32", label, f"int8 g{label[6:-6]} int8 embedding / fp32")
        ratios(label[:-6], label, f"int8 g{label[6:-6]} int8 / fp16 embedding")
    elif label.startswith("int8-g"):
        ratios("fp32", label, f"int8 groups of {label[6:]} / fp32")
        ratios("int8", label, f"int8 groups of {label[6:]} / int8")
ratios("rom-fp32", "rom-int8", "ROM int8 / ROM fp32")
ratios("fp32", "rom-int8", "ROM int8 / fp32")
PY
