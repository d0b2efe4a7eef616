#!/usr/bin/env bash
# Issue #6's study at our scale (docs/train.md, "The paper's study"):
# SmolLM2-135M-Instruct with 15 of its 30 blocks dropped by every
# truncation strategy (perplexity right after pruning), then, from the
# strategy with the lowest perplexity, continued pretraining on the same
# token budget with no / vanilla / miniLM / homotopic distillation from the
# unpruned model, and a model of the pruned shape trained from scratch on the
# same tokens. Each arm: wikitext-2 perplexity, the rom6 zero-shot average
# (--limit) and training tokens/s. Every step skips what is already in WORK,
# and training resumes from its checkpoint, so an interrupted run continues.
#
#   tools/prune_study.sh [BUILD_DIR]            (default: build)
#   env: WORK (/tmp/slimlm-prune-study), TOKENS (65536 per arm), CTX (128),
#        BATCH (4), LR (3e-4), LIMIT (200 docs per task), CHUNKS (20 wikitext-2
#        chunks of 512 tokens), THREADS (2), STRATEGY (the arms' pruning;
#        default: the lowest perplexity after pruning), ARMS (none vanilla
#        minilm homotopic scratch)
set -u
. "$(dirname "$0")/study_env.sh" "${1:-}" /tmp/slimlm-prune-study
tokens=${TOKENS:-65536}
data=corpus/gutenberg-nltk,corpus/llamafactory-demo,tinyshakespeare/input.txt

ppl() { # name model [flags]
  local n=$1 m=$2; shift 2
  [ -s "$n.ppl.json" ] || "$S" ppl "$m" "$@" --chunks "${CHUNKS:-20}" -t "$T" -q --data-dir "$D" --output "$n.ppl.json" \
    > "$n.ppl.log" 2>&1 || echo "error: $n: ppl failed (see $W/$n.ppl.log)" >&2
}
ev() { # name model [flags]
  local n=$1 m=$2; shift 2
  [ -s "$n.eval.json" ] || "$S" eval "$m" "$@" --tasks rom6 --limit "${LIMIT:-200}" -t "$T" -q -d "$D" -o "$n.eval.json" \
    > "$n.eval.log" 2>&1 || echo "error: $n: eval failed (see $W/$n.eval.log)" >&2
}
train() { # name [train-args...]: same data, tokens, schedule and seed for every arm
  local n=$1; shift
  [ -s "$n.gguf" ] || /usr/bin/time -v "$S" train "$@" --data "$data" --tokens "$tokens" --ctx "${CTX:-128}" \
    --batch "${BATCH:-4}" --lr "${LR:-3e-4}" --seed 1 -t "$T" -d "$D" --log-every 20 \
    --checkpoint "$n.ckpt" --checkpoint-every 50 $( [ -s "$n.ckpt" ] && echo --resume ) \
    -o "$n.gguf" --output "$n.json" > "$n.log" 2>&1 || { echo "error: $n: train failed (see $W/$n.log)" >&2; return 1; }
  rm -f "$n.ckpt"
}

ppl orig "$M" --dequantize
ev orig "$M" --dequantize
best= bestp=
for s in max-gap input output middle both block-influence; do
  [ -s "prune-$s.gguf" ] || "$S" prune "$M" --drop 15 --strategy "$s" -t "$T" -q -d "$D" -o "prune-$s.gguf" \
    --output "prune-$s.json" > "prune-$s.log" 2>&1 || { echo "error: prune $s failed (see $W/prune-$s.log)" >&2; continue; }
  ppl "prune-$s" "prune-$s.gguf"
  p=$(python3 -c "import json; print(json.load(open('prune-$s.ppl.json'))['ppl'])" 2>/dev/null) || continue
  if [ -z "$bestp" ] || python3 -c "import sys; sys.exit(not ($p < $bestp))"; then best=$s bestp=$p; fi
done
st=${STRATEGY:-$best}
echo "arms start from --drop 15 --strategy $st (perplexity after pruning $bestp for the best, $best)"
ev "prune-$st" "prune-$st.gguf"
# The pruned shape as an HF config.json, for the from-scratch arm.
[ -s "shape/config.json" ] || "$S" prune "$M" --drop 15 --strategy "$st" -t "$T" -q -d "$D" -o shape > /dev/null 2>&1
for arm in ${ARMS-none vanilla minilm homotopic scratch}; do
  case $arm in
    none) train cpt-none "$M" --drop 15 --strategy "$st" ;;
    scratch) train scratch "$M" --init random --config shape/config.json ;;
    *) train "cpt-$arm" "$M" --drop 15 --strategy "$st" --teacher "$M" --kd "$arm" ;;
  esac || continue
  n=$([ "$arm" = scratch ] && echo scratch || echo "cpt-$arm")
  ppl "$n" "$n.gguf"
  ev "$n" "$n.gguf"
done
python3 "$root/tools/prune_study_table.py" "$W" "$st"
