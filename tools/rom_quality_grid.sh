#!/usr/bin/env bash
# Issue #5's quality study on SmolLM2-135M-Instruct (docs/rom.md, "Quality
# grid"): LLM-ROM, SVD-LLM and plain SVD at 90/80/50% of the parameters, and
# the paper's ablations at 80% (calibration batch, sequence length, source).
# Every step skips what is already in WORK, so an interrupted run resumes.
#
#   tools/rom_quality_grid.sh [BUILD_DIR]            (default: build)
#   env: WORK (/tmp/slimlm-rom-grid), LIMIT (500: docs per task of the six-task
#        average), ABL_LIMIT (200: the same for the ablations), CHUNKS (40:
#        wikitext-2 chunks of 512 tokens), THREADS (2), STAGE (all | compress | eval)
#
# Plans: at each budget the automatic planner picks "last N blocks at module
# budget b" for rom; svd-llm and svd then use that same plan, and the
# ablations use the 80% plan, so only the named variable changes.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
S=$(cd "${1:-$root/build}" && pwd)/slimlm
M=${MODEL:-$HOME/.cache/slimlm/SmolLM2-135M-Instruct.Q4_1.gguf}
D=${SLM_DATA_DIR:-$root/../shared/data}
W=${WORK:-/tmp/slimlm-rom-grid}
T=${THREADS:-2}
stage=${STAGE:-all}
mkdir -p "$W" && cd "$W" || exit 1

ppl() { # name model [flags]
  local n=$1 m=$2; shift 2
  [ -s "$n.ppl.json" ] || "$S" ppl "$m" "$@" --chunks "${CHUNKS:-40}" -t "$T" -q --data-dir "$D" --output "$n.ppl.json" > "$n.ppl.log" 2>&1
}
rom() { # name rom-args...
  local n=$1; shift
  [ -s "$n.gguf" ] || /usr/bin/time -v "$S" rom "$M" -t "$T" -q -d "$D" --no-loss -o "$n.gguf" --output "$n.json" "$@" \
    > "$n.log" 2>&1 || { echo "error: $n: rom failed (see $W/$n.log)" >&2; return 1; }
  ppl "$n" "$n.gguf"
}
plan() { python3 -c "import json; d = json.load(open('$1.json')); print('last:%d %s' % (d['blocks_compressed'], d['module_budget']))"; }
ev() { # name model limit [flags]
  local n=$1 m=$2 lim=$3; shift 3
  [ -s "$n.eval.json" ] || "$S" eval "$m" "$@" --tasks rom6 --limit "$lim" -t "$T" -q -d "$D" -o "$n.eval.json" \
    > "$n.eval.log" 2>&1 || echo "error: $n: eval failed (see $W/$n.eval.log)" >&2
}

if [ "$stage" != eval ]; then
  ppl orig "$M" --dequantize
  for bud in 0.8 0.9 0.5; do rom rom-$bud --method rom --budget $bud; done
  for bud in 0.8 0.9 0.5; do
    read -r blk mb <<< "$(plan rom-$bud)"
    for meth in svd-llm svd; do rom $meth-$bud --method $meth --blocks "$blk" --module-budget "$mb"; done
  done
  read -r blk mb <<< "$(plan rom-0.8)"
  for b in 32 128; do rom abl-batch$b --method rom --blocks "$blk" --module-budget "$mb" --batch $b; done
  for s in 32 64; do rom abl-seq$s --method rom --blocks "$blk" --module-budget "$mb" --seqlen $s; done
  rom abl-arcc --method rom --blocks "$blk" --module-budget "$mb" --calib task:arc_challenge
  rom abl-text --method rom --blocks "$blk" --module-budget "$mb" --calib text:corpus/gutenberg-nltk/austen-emma.txt
fi
if [ "$stage" != compress ]; then
  ev orig "$M" "${LIMIT:-500}" --dequantize
  for bud in 0.8 0.9 0.5; do for meth in rom svd-llm svd; do ev $meth-$bud $meth-$bud.gguf "${LIMIT:-500}"; done; done
  for a in abl-batch32 abl-batch128 abl-seq32 abl-seq64 abl-arcc abl-text; do ev $a $a.gguf "${ABL_LIMIT:-200}"; done
  ev orig-abl "$M" "${ABL_LIMIT:-200}" --dequantize
  ev rom-0.8-abl rom-0.8.gguf "${ABL_LIMIT:-200}"
fi
python3 "$root/tools/rom_grid_table.py" "$W"
