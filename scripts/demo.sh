#!/usr/bin/env bash
# The main job on the default model (README's first command): installs what
# it needs, builds slimlm, fetches SmolLM2-135M-Instruct and compresses it
# the ways that cost least today, then shows what each cost side by side:
# #params, #MACs/token, weight bytes held, wikitext-2 perplexity (llama.cpp
# protocol, ctx 512) and prefill and decode speed, against the original
# in fp32.
#   1. INT8 (per-channel weights; activations per token with one scale per
#      64 columns; the token embedding as the int8 lm head's rows;
#      docs/int8.md): about 4x fewer bytes, 2.6x faster prefill and about
#      3x faster decode with AVX-512 VNNI, +0.8% perplexity;
#   2. LLM-ROM (training-free layerwise PCA; docs/rom.md) on the last blocks;
#   3. both: the ROM model quantised.
# Settings through the environment: BUDGET (0.95: ROM's overall parameter
# fraction), BLOCKS (4: ROM on the last N blocks), CALIB_BATCH (64 sequences
# of 128 tokens from a public-domain book), INT8_FLAGS (`slimlm quantize`
# options; default --outlier-threshold 0 --act-group 64 --embd int8), CHUNKS (40 ppl chunks; 0 = the whole test set), OUT
# (work dir).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
model=$(./scripts/fetch-model.sh)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target slimlm bench_forward
data="${SLM_DATA_DIR:-$(cd .. && pwd)/shared/data}"
budget=${BUDGET:-0.95}
blocks=${BLOCKS:-4}
batch=${CALIB_BATCH:-64}
chunks=${CHUNKS:-40}
out=${OUT:-/tmp/slimlm-demo}
threads=$(nproc)
mkdir -p "$out"
rom="$out/SmolLM2-135M-rom-$budget.gguf"
int8="$out/SmolLM2-135M-int8.gguf"
rom_int8="$out/SmolLM2-135M-rom-$budget-int8.gguf"
text="$data/wikitext-2-raw/wiki.test.raw"
ppl_args=(--data "$text" --ctx 512 --threads "$threads" -q)
[ "$chunks" -gt 0 ] && ppl_args+=(--chunks "$chunks")
# shellcheck disable=SC2206
int8_flags=(${INT8_FLAGS:---outlier-threshold 0 --act-group 64 --embd int8})

echo "== the model"
./build/slimlm info "$model" | head -n 9
echo
echo "== INT8: per-channel weights, activations per token and 64 columns (${int8_flags[*]})"
./build/slimlm quantize "$model" --int8 "${int8_flags[@]}" --data-dir "$data" --threads "$threads" -q \
  --output "$out/int8.json" -o "$int8"
echo "== LLM-ROM: last $blocks blocks, overall budget $budget, $batch x 128 calibration tokens (Jane Austen, Emma)"
./build/slimlm rom "$model" --method rom --budget "$budget" --blocks "last:$blocks" --batch "$batch" --seqlen 128 \
  --calib "text:$data/corpus/gutenberg-nltk/austen-emma.txt" --data-dir "$data" --threads "$threads" -q \
  --output "$out/rom.json" -o "$rom"
echo "== LLM-ROM, then INT8"
./build/slimlm quantize "$rom" --int8 "${int8_flags[@]}" --data-dir "$data" --threads "$threads" -q -o "$rom_int8"
echo
echo "== what it cost (wikitext-2 test, llama.cpp protocol, ctx 512${chunks:+, first $chunks chunks}; prefill: a 512-token chunk, decode: 64 tokens, $threads threads)"
# The original is computed in fp32 (--dequantize) like the compressed models,
# so each difference is the compression's alone.
./build/slimlm ppl "$model" --dequantize "${ppl_args[@]}" --output "$out/ppl-original.json" > /dev/null
for m in int8 rom rom_int8; do
  ./build/slimlm ppl "${!m}" "${ppl_args[@]}" --output "$out/ppl-$m.json" > /dev/null
done
python3 - "$out" "$model" "$int8" "$rom" "$rom_int8" "$threads" <<'PY'
import json, subprocess, sys
out, orig, int8, rom, rom_int8, threads = sys.argv[1:7]
def info(p):
    return json.loads(subprocess.check_output(["./build/slimlm", "info", p, "--json"]))
def speed(p):
    # bench_forward computes the original in fp32 (its Q4_1 file dequantised).
    r = subprocess.check_output(["./build/bench/bench_forward", p, "--threads", threads, "--prefill", "512",
                                 "--decode", "64", "--reps", "3", "--json"], stderr=subprocess.DEVNULL)
    return json.loads(r.decode().strip().splitlines()[-1])
rows = [("SmolLM2-135M-Instruct (fp32)", orig, "original"), ("+ INT8", int8, "int8"),
        ("+ LLM-ROM", rom, "rom"), ("+ LLM-ROM + INT8", rom_int8, "rom_int8")]
base = None
print(f"\n{'model':<30}{'#params':>11}{'#MACs/tok':>11}{'weights':>12}{'PPL':>9}{'PPL vs orig':>13}"
      f"{'prefill tok/s':>20}{'decode tok/s':>19}")
for label, path, name in rows:
    i = info(path)
    ppl = json.load(open(f"{out}/ppl-{name}.json"))["ppl"]
    b = speed(path)
    mib, pps, tps = b["weight_mib"], b["prefill_tok_s"], b["decode_tok_s"]
    if base is None:
        base = (ppl, mib, pps, tps)
    print(f"{label:<30}{i['n_params']/1e6:>10.2f}M{i['macs_per_token']/1e6:>10.2f}M{mib:>8.0f} MiB{ppl:>9.3f}"
          f"{100*(ppl/base[0]-1):>+12.1f}%{pps:>11.1f} ({pps/base[2]:.2f}x){tps:>10.1f} ({tps/base[3]:.2f}x)")
PY
