#!/usr/bin/env bash
# The main job on the default model (README's first command): installs what
# it needs, builds slimlm, fetches SmolLM2-135M-Instruct, and shows the
# model and its wikitext-2 perplexity (llama.cpp protocol, ctx 512).
# Extra arguments go to `slimlm ppl` (e.g. --chunks 20 for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
model=$(./scripts/fetch-model.sh)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target slimlm
data="${SLM_DATA_DIR:-../shared/data}"
./build/slimlm info "$model" | head -n 9
./build/slimlm ppl "$model" --data "$data/wikitext-2-raw/wiki.test.raw" --ctx 512 --threads "$(nproc)" "$@"
