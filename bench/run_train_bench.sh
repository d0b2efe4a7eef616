#!/bin/sh
# Training speed of issue #6: bench/bench_train (full AdamW steps of
# SmolLM2-135M, every parameter trainable, 1 x 512 tokens, 2 threads) and its
# model FLOP utilisation against the sgemm GFLOP/s measured in the same run
# on the step's own GEMM shapes (goal >= 40%). Builds nothing.
#
#   bench/run_train_bench.sh [BUILD_DIR] [bench_train options]
#     MODEL            default ~/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf (dequantised to fp32)
#     --batch B --ctx T --accum M --steps S --recompute    (defaults 1, 512, 1, 4, off)
#
# The machine may be shared: the bench prints CPU seconds and the load
# average next to wall times, and an MFU per CPU-second, which holds up when
# other jobs take part of the cores. OpenMP waits passively (bench_env.sh)
# unless OMP_WAIT_POLICY says otherwise (active is faster on an idle
# machine, docs/train.md); NICE (default 0) lowers the priority.
set -eu
. "$(dirname "$0")/bench_env.sh" # BUILD from the first argument
slm_bench_setup "$BUILD" bench_train
echo "OMP_WAIT_POLICY=$OMP_WAIT_POLICY OMP_NUM_THREADS=$OMP_NUM_THREADS nice -n ${NICE:-0} $BIN --threads $OMP_NUM_THREADS $*"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
nice -n "${NICE:-0}" "$BIN" --threads "$OMP_NUM_THREADS" "$@" | tee "$log"
echo "uptime:$(uptime)"
awk '/^MFU/ { v = $2 + 0; printf "\nMFU / sgemm peak = %.2f (best step, wall clock; goal >= 0.40): %s\n", v / 100,
              (v >= 40 ? "met" : "not met") }' "$log"
