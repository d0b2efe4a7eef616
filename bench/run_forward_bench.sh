#!/usr/bin/env bash
# Forward-pass speed, slimlm next to llama.cpp on the same weights and threads.
#
# Writes F32, BF16 and Q8_0 GGUFs of MODEL with `slimlm convert` (falls back to
# tools/gguf_requant.py if that fails), then runs bench/bench_forward on the
# F32 file (slimlm computes in fp32) and llama.cpp (llama-cpp-python, n_batch
# 512) on all three, and prints prefill / decode tokens/s with ratios, the
# sgemm GFLOP/s OpenBLAS reaches on the model's GEMM shapes, and peak RSS.
# Timings are best-of-REPS; on a shared machine run it when it is quiet.
#
#   bench/run_forward_bench.sh [BUILD_DIR]      (default: build)
#   env: MODEL (default SmolLM2 Q4_1), THREADS (2), PREFILL (512), DECODE (128), REPS (5), WORK (/tmp/slimlm-bench)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
model=${MODEL:-$HOME/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf}
threads=${THREADS:-2}
prefill=${PREFILL:-512}
decode=${DECODE:-128}
reps=${REPS:-5}
work=${WORK:-/tmp/slimlm-bench}
mkdir -p "$work"
base=$(basename "$model" .gguf)

for t in F32 BF16 Q8_0; do
  out="$work/$base.$t.gguf"
  [ -s "$out" ] && continue
  lower=$(printf '%s' "$t" | tr 'A-Z' 'a-z')
  if ! "$build/slimlm" convert "$model" -o "$out" --dtype "$lower" -q; then
    echo "slimlm convert failed for $t; writing it with tools/gguf_requant.py" >&2
    python3 "$root/tools/gguf_requant.py" "$model" "$out" --type "$t"
  fi
done

echo "slimlm: $base F32, $threads threads ..." >&2
OMP_NUM_THREADS=$threads "$build/bench/bench_forward" "$work/$base.F32.gguf" --threads "$threads" \
  --prefill "$prefill" --decode "$decode" --reps "$reps" --json > "$work/slimlm.json"
for t in F32 BF16 Q8_0; do
  echo "llama.cpp: $base $t, $threads threads ..." >&2
  python3 "$root/bench/llama_cpp_bench.py" "$work/$base.$t.gguf" --threads "$threads" \
    --prefill "$prefill" --decode "$decode" --reps "$reps" > "$work/llama_$t.json"
done

python3 - "$work" "$prefill" "$decode" <<'PY'
import json, sys
work, T, N = sys.argv[1], sys.argv[2], sys.argv[3]
s = json.load(open(f"{work}/slimlm.json"))
ll = {t: json.load(open(f"{work}/llama_{t}.json")) for t in ("F32", "BF16", "Q8_0")}
f32 = ll["F32"]
print(f"\nforward pass, {s['threads']} threads, best of runs (llama-cpp-python {f32['version']})\n")
print(f"{'engine':<22}{'prefill ' + T + ' tok/s':>20}{'decode tok/s':>15}{'peak RSS MiB':>15}")
print(f"{'slimlm F32':<22}{s['prefill_tok_s']:>20.1f}{s['decode_tok_s']:>15.1f}{s['peak_rss_mib']:>15.1f}")
for t, r in ll.items():
    print(f"{'llama.cpp ' + t:<22}{r['prefill_tok_s']:>20.1f}{r['decode_tok_s']:>15.1f}{r['peak_rss_mib']:>15.1f}")
print()
for t, r in ll.items():
    print(f"slimlm F32 / llama.cpp {t:<5} prefill {s['prefill_tok_s'] / r['prefill_tok_s']:.2f}x   "
          f"decode {s['decode_tok_s'] / r['decode_tok_s']:.2f}x")
print(f"\nslimlm prefill {s['prefill_gflops']:.1f} GFLOP/s = {100 * s['prefill_gflops'] / s['sgemm_model_shapes_gflops']:.0f}% "
      f"of OpenBLAS sgemm on the model's shapes ({s['sgemm_model_shapes_gflops']:.1f} GFLOP/s), "
      f"{100 * s['prefill_gflops'] / s['sgemm_peak_gflops']:.0f}% of its best shape ({s['sgemm_peak_gflops']:.1f})")
print(f"slimlm peak RSS {s['peak_rss_mib']:.1f} MiB = {s['peak_rss_mib'] / s['weight_mib']:.2f}x the fp32 weights "
      f"({s['weight_mib']:.1f} MiB)")
PY
