# Sourced by the bench scripts that run one bench program on a machine that
# may be shared with other jobs (`. "$(dirname "$0")/bench_env.sh"`).
#
# Sourcing it takes the script's first argument as the build directory
# unless it is an option (BUILD, default build) and shifts it off the
# script's arguments (a sourced file runs in the script's own environment).
#
#   slm_bench_setup BUILD_DIR NAME
# sets BIN to BUILD_DIR/bench/NAME (exits when it is not built), prints the
# machine and its load average, and exports OpenMP defaults: OMP_NUM_THREADS
# 2, and passive waiting, since OpenMP's spin-waiting stalls every parallel
# region when other jobs hold the cores (docs/forward.md: 7x slower here at
# load 8); either can be overridden from the environment.
BUILD=build
case "${1:-}" in
  -*|"") ;;
  *) BUILD=$1; shift ;;
esac

slm_bench_setup() {
  BIN=$1/bench/$2
  if [ ! -x "$BIN" ]; then
    echo "error: $BIN: not built (cmake --build $1 --target $2)" >&2
    exit 1
  fi
  echo "machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "uptime:$(uptime)"
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
}
