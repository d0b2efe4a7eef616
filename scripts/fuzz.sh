#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for
# SECONDS (default 600) on a scratch corpus seeded from tests/bad and
# tests/fuzz/seeds. Crashes are copied to tests/fuzz/regressions/<target>/
# so they become replay tests. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
CC=clang cmake -S . -B build-fuzz -DSLM_FUZZ=ON -DSLM_OPENMP=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j "$(nproc)"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do
    n=$(basename "$f" .c)
    [ "$n" = fuzz_io ] || targets+=("$n")
  done
fi
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  crashes=build-fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes" "tests/fuzz/regressions/$t"
  seeds=(tests/bad)
  [ -d "tests/fuzz/seeds/$t" ] && seeds=("tests/fuzz/seeds/$t" "${seeds[@]}")
  echo "fuzzing $t for ${secs}s" >&2
  set +e
  ASAN_OPTIONS=detect_leaks=1 "./build-fuzz/tests/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=4096 \
    -timeout=20 -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus" "${seeds[@]}" 2>&1 | tail -n 25
  rc=${PIPESTATUS[0]}
  set -e
  cp -n "$crashes"/* "tests/fuzz/regressions/$t/" 2>/dev/null || true
  echo "$t: exit $rc, $(ls "$crashes" | wc -l) crash files" >&2
done
