#!/usr/bin/env bash
# The main job on the default model (README's first command): installs what
# it needs, builds slimlm, fetches SmolLM2-135M-Instruct, compresses it with
# LLM-ROM (training-free, layerwise PCA) and shows what that cost: #params,
# #MACs and wikitext-2 perplexity (llama.cpp protocol, ctx 512) before and
# after. Settings through the environment:
#   BUDGET (0.95: overall parameter fraction), BLOCKS (4: compress the last
#   N blocks), CALIB_BATCH (64 sequences of 128 tokens from a public-domain
#   book), CHUNKS (40 ppl chunks; 0 = the whole test set), OUT (work dir).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
model=$(./scripts/fetch-model.sh)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target slimlm
data="${SLM_DATA_DIR:-$(cd .. && pwd)/shared/data}"
budget=${BUDGET:-0.95}
blocks=${BLOCKS:-4}
batch=${CALIB_BATCH:-64}
chunks=${CHUNKS:-40}
out=${OUT:-/tmp/slimlm-demo}
threads=$(nproc)
mkdir -p "$out"
compressed="$out/SmolLM2-135M-rom-$budget.gguf"
text="$data/wikitext-2-raw/wiki.test.raw"
ppl_args=(--data "$text" --ctx 512 --threads "$threads" -q)
[ "$chunks" -gt 0 ] && ppl_args+=(--chunks "$chunks")

echo "== the model"
./build/slimlm info "$model" | head -n 9
echo
echo "== compress: LLM-ROM, last $blocks blocks, overall budget $budget, $batch x 128 calibration tokens (Jane Austen, Emma)"
./build/slimlm rom "$model" --method rom --budget "$budget" --blocks "last:$blocks" --batch "$batch" --seqlen 128 \
  --calib "text:$data/corpus/gutenberg-nltk/austen-emma.txt" --data-dir "$data" --threads "$threads" \
  --output "$out/rom.json" -o "$compressed"
echo
echo "== what it cost (wikitext-2 test, llama.cpp protocol, ctx 512${chunks:+, first $chunks chunks})"
# The original is computed in fp32 (--dequantize) like the compressed model, so
# the difference is the compression's alone.
./build/slimlm ppl "$model" --dequantize "${ppl_args[@]}" --output "$out/ppl-original.json" | tail -n 2
./build/slimlm ppl "$compressed" "${ppl_args[@]}" --output "$out/ppl-compressed.json" | tail -n 2
python3 - "$out" "$model" "$compressed" <<'EOF'
import json, subprocess, sys
out, orig, comp = sys.argv[1:4]
def info(p):
    return json.loads(subprocess.check_output(["./build/slimlm", "info", p, "--json"]))
def ppl(name):
    return json.load(open(f"{out}/ppl-{name}.json"))["ppl"]
a, b = info(orig), info(comp)
pa, pb = ppl("original"), ppl("compressed")
print(f"\n{'model':<28}{'#params':>14}{'#MACs/token':>14}{'PPL':>10}")
print(f"{'SmolLM2-135M-Instruct':<28}{a['n_params']/1e6:>13.2f}M{a['macs_per_token']/1e6:>13.2f}M{pa:>10.3f}")
print(f"{'+ LLM-ROM':<28}{b['n_params']/1e6:>13.2f}M{b['macs_per_token']/1e6:>13.2f}M{pb:>10.3f}")
print(f"{'change':<28}{100*(b['n_params']/a['n_params']-1):>13.1f}%{100*(b['macs_per_token']/a['macs_per_token']-1):>13.1f}%{100*(pb/pa-1):>9.1f}%")
EOF
