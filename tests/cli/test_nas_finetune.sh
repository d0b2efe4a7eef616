#!/usr/bin/env bash
# slimlm nas finetune through the binary, on a 4-block random model (D 32,
# F 64, the LLaMA SentencePiece vocabulary; made here by slimlm train
# --init random in one step) and a handful of Alpaca items written here:
#   - every usage error and bad input (missing options, out-of-range values,
#     bad --depths / --widths / --order, malformed or missing Alpaca files,
#     every item held out, --resume without a checkpoint or with another
#     run's) is one line "error: ..." with exit status 1 and leaves no
#     output behind;
#   - 4 steps straight == 2 steps (--max-steps) + --resume + 2, byte for
#     byte, and slimlm reads the written super-network back with all blocks.
# A few seconds of CPU, also under ASan (not labelled slow).
set -u
bin="${SLM_BIN:?}"
data="${SLM_DATA_DIR:?}"
tmp="${SLM_TEST_TMP:-/tmp}/nas_finetune"
rm -rf "$tmp"
mkdir -p "$tmp"
. "$(dirname "$0")/lib.sh"

spm="$data/tokenizer-vectors/ggml-vocab-llama-spm.gguf"
blake="$data/corpus/gutenberg-nltk/blake-poems.txt"

# ---- the model and the data ----------------------------------------------------------------------
tiny_config "$tmp/cfg4.json"
m="$tmp/t4.gguf"
if ! "$bin" train --init random --config "$tmp/cfg4.json" --tokenizer "$spm" --data "$blake" --tokens 64 --ctx 64 \
     --batch 1 -t 1 -q -o "$m" > "$tmp/init.txt" 2>&1; then
  echo "FAIL making the 4-block model:"; cat "$tmp/init.txt"; exit 1
fi
cat > "$tmp/a.json" <<'EOF'
[
  {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
  {"instruction": "Add the numbers.", "input": "2 and 3", "output": "2 + 3 = 5."},
  {"instruction": "Give the opposite of the word.", "input": "cold", "output": "Hot."},
  {"instruction": "Say hello in French.", "input": "", "output": "Bonjour."},
  {"instruction": "Count to three.", "input": "", "output": "One, two, three."},
  {"instruction": "Is water wet?", "input": "", "output": "Yes, water makes things wet."}
]
EOF
printf '[\n  {"instruction": "a", "input": "", "output": "b"},\n  {"instruction": "c", "output": \n' > "$tmp/broken.json"
printf '{"instruction": "a", "input": "", "output": "b"}\n{"instruction": broken}\n' > "$tmp/broken.jsonl"
printf '[{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c", "input": ""}]\n' > "$tmp/nooutput.json"
printf '[{"instruction": "a", "input": 7, "output": "b"}]\n' > "$tmp/badinput.json"

x="$tmp/x.gguf"
ft=("$bin" nas finetune "$m" -t 1 -q)
run=(--data "$tmp/a.json" --val-items 2 --steps 2 --ctx 128 --batch 2 -o "$x")

# ---- usage errors: before the model is loaded -------------------------------------------------------
bad "--data FILES is required" "${ft[@]}" --steps 2 -o "$x"
bad "-o OUT is required" "${ft[@]}" --data "$tmp/a.json" --steps 2
bad "give --steps N or --tokens N" "${ft[@]}" --data "$tmp/a.json" -o "$x"
bad "give --steps N or --tokens N" "${ft[@]}" --data "$tmp/a.json" --steps 2 --tokens 512 -o "$x"
bad "--batch 0, --accum 1" "${ft[@]}" "${run[@]}" --batch 0
bad "--accum 0" "${ft[@]}" "${run[@]}" --accum 0
bad "--ctx 1" "${ft[@]}" "${run[@]}" --ctx 1
bad "--val-items -1" "${ft[@]}" "${run[@]}" --val-items -1
bad "--lr 0, --clip 1, --wd 0, --min-lr 0.1 out of range" "${ft[@]}" "${run[@]}" --lr 0
bad "--min-lr 2 out of range" "${ft[@]}" "${run[@]}" --min-lr 2
bad "--clip -1" "${ft[@]}" "${run[@]}" --clip -1
bad "x.gguf.ckpt: --resume: no checkpoint there" "${ft[@]}" "${run[@]}" --resume
bad "$tmp/none.ckpt: --resume: no checkpoint there" "${ft[@]}" "${run[@]}" --resume --checkpoint "$tmp/none.ckpt"

# ---- bad values: the search space, the model, the schedule --------------------------------------------
bad "block count 5 out of range 1..4" "${ft[@]}" "${run[@]}" --depths 3,5
bad "search space: bad block counts '0,4'" "${ft[@]}" "${run[@]}" --depths 0,4
bad "search space: bad" "${ft[@]}" "${run[@]}" --depths 2,x
bad "cannot be a percentage" "${ft[@]}" "${run[@]}" --depths 50%
bad "search space: empty list" "${ft[@]}" "${run[@]}" --depths ""
bad "MLP width 128 out of range 1..64" "${ft[@]}" "${run[@]}" --widths 50%,200%
bad "MLP width 65 out of range 1..64" "${ft[@]}" "${run[@]}" --widths 32,65
bad "search space: bad" "${ft[@]}" "${run[@]}" --widths 32,,64x
bad "unknown block order 'sideways'" "${ft[@]}" "${run[@]}" --order sideways
bad "--warmup 5 is longer than the run (2 steps)" "${ft[@]}" "${run[@]}" --warmup 5
bad "has no tokenizer" "$bin" nas finetune "$data/models/tiny-random-LlamaForCausalLM" "${run[@]}" -t 1 -q
bad "nosuchmodel.gguf" "$bin" nas finetune "$tmp/nosuchmodel.gguf" "${run[@]}" -t 1 -q

# ---- bad data: one line naming the file (and the item or line) ------------------------------------
bad "broken.json: not a valid JSON array" "${ft[@]}" "${run[@]}" --data "$tmp/broken.json"
bad "broken.jsonl:2: not valid JSON" "${ft[@]}" "${run[@]}" --data "$tmp/broken.jsonl"
bad "nooutput.json: item 1: an Alpaca item needs" "${ft[@]}" "${run[@]}" --data "$tmp/nooutput.json" --val-items 0
bad "badinput.json: item 0: an Alpaca item needs" "${ft[@]}" "${run[@]}" --data "$tmp/badinput.json" --val-items 0
bad "nosuchfile.json: cannot open instruction data" "${ft[@]}" "${run[@]}" --data "$tmp/a.json,nosuchfile.json"
bad "a directory" "${ft[@]}" "${run[@]}" --data "$tmp"
bad "no item in \[6, 6) of the 6 items" "${ft[@]}" "${run[@]}" --val-items 6
if [ -e "$x" ]; then echo "FAIL a failed run left $x"; fail=1; fi

# ---- resume is exact -----------------------------------------------------------------------------
common=("${ft[@]}" --data "$tmp/a.json" --val-items 2 --steps 4 --ctx 128 --batch 2 --lr 1e-3 --warmup 1
        --depths 2,3,4 --widths 50%,100% --seed 7 --checkpoint-every 0)
if "${common[@]}" -o "$tmp/straight.gguf" > "$tmp/straight.txt" 2>&1 &&
   "${common[@]}" --max-steps 2 --checkpoint "$tmp/r.ckpt" -o "$tmp/half.gguf" > /dev/null 2>&1 &&
   "${common[@]}" --resume --checkpoint "$tmp/r.ckpt" -o "$tmp/resumed.gguf" > "$tmp/resume.txt" 2>&1 &&
   cmp -s "$tmp/straight.gguf" "$tmp/resumed.gguf" && ! cmp -s "$tmp/half.gguf" "$tmp/resumed.gguf" &&
   grep -q '^steps 2 -> 4 ' "$tmp/resume.txt" && "$bin" info "$tmp/resumed.gguf" | grep -q "blocks kept *4 of 4"; then
  echo "ok   4 steps == 2 + --resume + 2, byte-identical super-network ($(grep -o 'full network [^;]*' "$tmp/resume.txt"))"
else
  echo "FAIL resume:"; cat "$tmp/straight.txt" "$tmp/resume.txt"; fail=1
fi
bad "checkpoint made with --batch 2, this run has 1" "${common[@]}" --batch 1 --resume --checkpoint "$tmp/r.ckpt" -o "$x"
bad "checkpoint made on other training data" "${common[@]}" --val-items 1 --resume --checkpoint "$tmp/r.ckpt" -o "$x"
if [ -e "$x" ]; then echo "FAIL a failed run left $x"; fail=1; fi
rm -rf "$tmp"
exit $fail
