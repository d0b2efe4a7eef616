#!/usr/bin/env bash
# Issue #5's quality study on SmolLM2-135M-Instruct (docs/rom.md, "Quality
# grid"): LLM-ROM, SVD-LLM and plain SVD at 90/80/50% of the parameters, and
# the paper's ablations at 80% (calibration batch, sequence length, source).
# Every step skips what is already in WORK, so an interrupted run resumes.
#
#   tools/rom_quality_grid.sh [BUILD_DIR]            (default: build)
#   env: WORK (/tmp/slimlm-rom-grid), LIMIT (500: docs per task of the six-task
#        average), ABL_LIMIT (200: the same for the ablations), CHUNKS (40:
#        wikitext-2 chunks of 512 tokens), THREADS (2), STAGE (all | compress | eval | ablations: only
#        the 80% rom plan, then the ablations)
#
# Plans: at each budget the automatic planner picks "last N blocks at module
# budget b" for rom; svd-llm and svd then use that same plan, and the
# ablations use the 80% plan, so only the named variable changes.
set -u
. "$(dirname "$0")/study_env.sh" "${1:-}" /tmp/slimlm-rom-grid
stage=${STAGE:-all}

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

# Model by model (compress, perplexity, zero-shot), so that an interrupted
# run leaves whole rows: the main grid first, then the ablations. STAGE
# compress skips the zero-shot runs, STAGE eval the compressions, STAGE
# ablations the main grid (it makes only the 80% rom model the ablations use).
one() { # name limit rom-args...
  local n=$1 lim=$2; shift 2
  [ "$stage" = eval ] || rom "$n" "$@" || return 0
  [ "$stage" = compress ] || [ ! -s "$n.gguf" ] || ev "$n" "$n.gguf" "$lim"
}
ppl orig "$M" --dequantize
if [ "$stage" = ablations ]; then # the 80% plan is all the ablations need
  rom rom-0.8 --method rom --budget 0.8
else
  [ "$stage" = compress ] || ev orig "$M" "${LIMIT:-500}" --dequantize
  for bud in 0.8 0.9 0.5; do
    one rom-$bud "${LIMIT:-500}" --method rom --budget $bud
    [ -s rom-$bud.json ] || continue
    read -r blk mb <<< "$(plan rom-$bud)"
    for meth in svd-llm svd; do one $meth-$bud "${LIMIT:-500}" --method $meth --blocks "$blk" --module-budget "$mb"; done
  done
fi
if [ -s rom-0.8.json ]; then
  read -r blk mb <<< "$(plan rom-0.8)"
  [ "$stage" = compress ] || ev orig-abl "$M" "${ABL_LIMIT:-200}" --dequantize
  [ "$stage" = compress ] || ev rom-0.8-abl rom-0.8.gguf "${ABL_LIMIT:-200}"
  for b in 32 128; do one abl-batch$b "${ABL_LIMIT:-200}" --method rom --blocks "$blk" --module-budget "$mb" --batch $b; done
  for s in 32 64; do one abl-seq$s "${ABL_LIMIT:-200}" --method rom --blocks "$blk" --module-budget "$mb" --seqlen $s; done
  one abl-arcc "${ABL_LIMIT:-200}" --method rom --blocks "$blk" --module-budget "$mb" --calib task:arc_challenge
  one abl-text "${ABL_LIMIT:-200}" --method rom --blocks "$blk" --module-budget "$mb" \
    --calib text:corpus/gutenberg-nltk/austen-emma.txt
fi
python3 "$root/tools/rom_grid_table.py" "$W"
