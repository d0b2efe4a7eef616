# Sourced by the study scripts in tools/ (rom_quality_grid.sh, prune_study.sh,
# nas_study.sh), each resumable in its own work directory:
#
#   . "$(dirname "$0")/study_env.sh" "${1:-}" DEFAULT_WORK
#
# sets root (the checkout), S (BUILD_DIR/slimlm, the first argument or
# build), M (MODEL, default the fetched SmolLM2-135M-Instruct Q4_1), D
# (SLM_DATA_DIR, default ../shared/data), W (WORK, default DEFAULT_WORK) and
# T (THREADS, default 2), then makes W and enters it.
root=$(cd "$(dirname "$0")/.." && pwd)
S=$(cd "${1:-$root/build}" && pwd)/slimlm
M=${MODEL:-$HOME/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf}
D=${SLM_DATA_DIR:-$root/../shared/data}
W=${WORK:-$2}
T=${THREADS:-2}
mkdir -p "$W" && cd "$W" || exit 1
