#!/usr/bin/env bash
# Tokenization throughput of slimlm vs HF tokenizers, both single-threaded,
# on the same tokenizer (built by HF from the GGUF's metadata, with SmolLM2's
# real pre-tokenizer; see tools/make_tokenizer_golden.py) and the same text.
#   usage: bench/bench_tokenize.sh [BUILD_DIR] [MODEL] [TEXT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
model=${2:-$HOME/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf}
text=${3:-$here/../../shared/data/wikitext-2-raw/wiki.test.raw}
export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

ours=$("$build/bench/bench_tokenize" "$model" "$text" 5)
theirs=$(python3 - "$model" "$text" "$here/../tools" 2>/dev/null <<'PY'
import sys, time
sys.path.insert(0, sys.argv[3])
from make_tokenizer_golden import load_hf
tok, _, _ = load_hf(sys.argv[1])
tok.encode_special_tokens = True
text = open(sys.argv[2], encoding="utf-8").read()
lines = text.splitlines(keepends=True)
nb = len(text.encode())
for mode in ("document", "lines"):
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        if mode == "document":
            n = len(tok.encode(text, add_special_tokens=False).ids)
        else:
            n = sum(len(tok.encode(l, add_special_tokens=False).ids) for l in lines)
        best = min(best, time.perf_counter() - t0)
    print(f"HF     {mode:9s} {nb / best / 1e6:8.2f} MB/s  {n} ids  {best:.3f} s")
PY
)
echo "$ours"
echo "$theirs"
for mode in document lines; do
  a=$(echo "$ours" | awk -v m=$mode '$2 == m {print $3}')
  b=$(echo "$theirs" | awk -v m=$mode '$2 == m {print $3}')
  awk -v m=$mode -v a="$a" -v b="$b" 'BEGIN { printf "ratio  %-9s %8.2fx (slimlm / HF tokenizers, single thread)\n", m, a / b }'
done
