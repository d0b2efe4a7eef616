#!/bin/sh
# The LLaMA-7B-shaped LLM-ROM run of docs/rom.md ("LLaMA-7B shapes"):
# bench/bench_rom7b.c on the paper's 80% plan (12 blocks at module budget
# 0.46, 512 x 128 calibration tokens) on 2 threads.
#
#   bench/bench_rom7b.sh [BUILD_DIR] [bench_rom7b options]
#     --blocks 1        quick mode: one block at full shapes (X 1 GiB,
#                       about 3.5 GB peak), the 12-block figures extrapolated
#     --seqs 64         fewer calibration sequences (the factoring is the same)
#     --dim 512 --ff 1376 --heads 4   a small stand-in for development
#
# The machine may be shared: the bench prints the load average and CPU time
# next to wall time; OpenMP waits passively (bench_env.sh) unless
# OMP_WAIT_POLICY says otherwise.
set -eu
. "$(dirname "$0")/bench_env.sh" # BUILD from the first argument
slm_bench_setup "$BUILD" bench_rom7b
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY OMP_NUM_THREADS=$OMP_NUM_THREADS nice -n ${NICE:-10} $BIN $*"
exec nice -n "${NICE:-10}" "$BIN" "$@"
