#!/usr/bin/env bash
# Issue #7's search comparison on SmolLM2-135M-Instruct (docs/nas.md,
# "Results"): the LINAS search (NSGA-II on fitted predictors) against random
# search with the same number of real evaluations, their hypervolumes, the
# fronts plotted, and the prefill throughput of the front members measured
# afterwards in one command (the rates recorded during a search depend on
# the machine's load at that moment).
# Every step skips what is already in WORK; an interrupted search resumes.
#
#   tools/nas_study.sh [BUILD_DIR]            (default: build)
#   env: MODEL (SmolLM2 Q4_1, run in fp32), WORK (/tmp/slimlm-nas-study),
#        TASK (arc_easy), LIMIT (200 documents), EVALS (100), INIT (20),
#        PER_ROUND (10), SEED (1), THREADS (2), CHANNELS (reorder | plain),
#        TPUT_REPS (5)
set -u
. "$(dirname "$0")/study_env.sh" "${1:-}" /tmp/slimlm-nas-study
task=${TASK:-arc_easy}
reorder=()
[ "${CHANNELS:-reorder}" = reorder ] && reorder=(--reorder)

# Both searches use the same seed, so they start from the same INIT random
# sub-networks; the random baseline then keeps drawing at random.
search() { # name [--random]
  local n=$1 resume=()
  shift
  [ -s "$n.json" ] && resume=(--resume)
  /usr/bin/time -v "$S" nas search "$M" --dequantize --task "$task" --limit "${LIMIT:-200}" \
    --depths 20,25,30 --widths 768,1536 --evals "${EVALS:-100}" --init "${INIT:-20}" \
    --per-round "${PER_ROUND:-10}" --population 50 --generations 100 --tput-tokens 128 --tput-reps 2 \
    --seed "${SEED:-1}" "${reorder[@]}" -t "$T" -q -d "$D" -o "$n.json" "${resume[@]}" "$@" \
    > "$n.log" 2>&1 || { echo "error: $n: search failed (see $W/$n.log)" >&2; exit 1; }
}
search linas
search random --random
"$S" nas compare linas.json random.json --names LINAS,random --svg compare.svg | tee compare.txt
"$S" nas report linas.json --svg linas.svg > linas.report.txt
"$S" nas report random.json --svg random.svg > random.report.txt

# The fronts' members and the full model, timed in one command.
python3 - linas.json random.json > fronts.json <<'PY'
import json, sys
archs = []
for path, tag in zip(sys.argv[1:], ("linas", "random")):
    d = json.load(open(path))
    if tag == "linas":
        archs.append({"name": "full", "mlp_widths": d["reference"]["mlp_widths"]})
    ev = d["evaluated"]
    for k, i in enumerate(sorted(d["summary"]["front"], key=lambda i: ev[i]["params"])):
        archs.append({"name": "%s-front-%d" % (tag, k + 1), "mlp_widths": ev[i]["mlp_widths"]})
json.dump(archs, sys.stdout)
PY
[ -s tput.json ] || "$S" nas eval "$M" --dequantize --archs fronts.json --task "$task" --limit 1 \
  --channels "${CHANNELS:-reorder}" --tput-tokens 128 --tput-reps "${TPUT_REPS:-5}" -t "$T" -q -d "$D" \
  -o tput.json > tput.txt 2>&1 || { echo "error: throughput run failed (see $W/tput.txt)" >&2; exit 1; }
cat tput.txt
