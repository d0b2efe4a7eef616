#!/usr/bin/env bash
# slimlm train through the binary, on tiny models (the random-weight
# tiny-random-LlamaForCausalLM with the LLaMA SentencePiece vocabulary, and
# 4-block models made here with --init random), real text from ../shared/data:
#   - every usage error is one line "error: ..." with exit status 1 and
#     leaves no output behind;
#   - a short run lowers the validation loss and writes a model slimlm reads;
#   - --init random --config trains a model of that shape from scratch;
#   - vanilla / minilm / homotopic KD runs (truncated initialisation, a
#     pruned GGUF student with its block map, gradual removal) report their
#     terms and write the shallower model;
#   - 2N steps straight == N steps (--max-steps) + --resume + N more,
#     byte for byte, with homotopic + MiniLM KD, gradual removal (one block
#     before the checkpoint, one after) and 2 micro-batches on 2 threads.
set -u
bin="${SLM_BIN:?}"
data="${SLM_DATA_DIR:?}"
tmp="${SLM_TEST_TMP:-/tmp}/train"
rm -rf "$tmp"
mkdir -p "$tmp"
. "$(dirname "$0")/lib.sh"

tiny="$data/models/tiny-random-LlamaForCausalLM"
spm="$data/tokenizer-vectors/ggml-vocab-llama-spm.gguf"
blake="$data/corpus/gutenberg-nltk/blake-poems.txt"
macbeth="$data/corpus/gutenberg-nltk/shakespeare-macbeth.txt"
small="--ctx 64 --batch 4 -t 1 -q"

# ---- usage errors -------------------------------------------------------------------------------
printf '{"text": "one"}\n{"text": broken}\n' > "$tmp/bad.jsonl"
bad "--data FILES is required" "$bin" train "$tiny" --tokens 100 -o "$tmp/x.gguf"
bad "--tokens N (> 0) is required" "$bin" train "$tiny" --data "$blake" -o "$tmp/x.gguf"
bad "-o OUT is required" "$bin" train "$tiny" --data "$blake" --tokens 100
bad "MODEL is required" "$bin" train --data "$blake" --tokens 100 -o "$tmp/x.gguf"
bad "--kd vanilla needs --teacher MODEL" "$bin" train "$tiny" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --kd vanilla
bad "unknown distillation 'tinybert'" "$bin" train "$tiny" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --kd tinybert --teacher "$tiny"
bad "--teacher given with --kd none" "$bin" train "$tiny" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --teacher "$tiny"
bad "expected adamw or lion" "$bin" train "$tiny" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --optimizer sgd
bad "--drop-every needs --drop K" "$bin" train "$tiny" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --drop-every 50
bad "--init random needs --config" "$bin" train --init random --tokenizer "$spm" --data "$blake" --tokens 100 -o "$tmp/x.gguf"
bad "--val-every needs --val" "$bin" train "$tiny" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --val-every 5
bad "no checkpoint there" "$bin" train "$tiny" --tokenizer "$spm" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --resume
bad "has no tokenizer; give --tokenizer" "$bin" train "$tiny" --data "$blake" --tokens 100 -o "$tmp/x.gguf"
bad "evaluation (test/validation) text" "$bin" train "$tiny" --tokenizer "$spm" --data "$data/wikitext-2-raw/wiki.test.raw" --tokens 100 -o "$tmp/x.gguf"
bad "evaluation (test/validation) text" "$bin" train "$tiny" --tokenizer "$spm" --data "$blake,$data/ptb/ptb.test.txt" --tokens 100 -o "$tmp/x.gguf"
bad "nonexistent.txt: cannot open training data" "$bin" train "$tiny" --tokenizer "$spm" --data nonexistent.txt --tokens 100 -o "$tmp/x.gguf"
bad "bad.jsonl:2: not valid JSON" "$bin" train "$tiny" --tokenizer "$spm" --data "$tmp/bad.jsonl" --tokens 100 -o "$tmp/x.gguf"
bad "no tensor name starts with" "$bin" train "$tiny" --tokenizer "$spm" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --freeze model.nothing. $small
bad "can drop" "$bin" train "$tiny" --tokenizer "$spm" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --drop 5 $small
bad "longer than the model's" "$bin" train "$tiny" --tokenizer "$spm" --data "$blake" --tokens 100 -o "$tmp/x.gguf" --ctx 4096 -q
if [ -e "$tmp/x.gguf" ]; then echo "FAIL a failed run left $tmp/x.gguf"; fail=1; fi

# ---- a short real run: validation loss goes down ------------------------------------------------------
if "$bin" train "$tiny" --tokenizer "$spm" --data "$blake" --val "$macbeth" --val-windows 16 --val-every 10 \
     --tokens 5120 --lr 1e-2 -o "$tmp/tiny.gguf" --output "$tmp/tiny.json" $small > "$tmp/tiny.txt" 2>&1; then
  first=$(awk '$1 ~ /^[0-9]+$/ && NF == 5 {print $4; exit}' "$tmp/tiny.txt")
  last=$(awk '$1 ~ /^[0-9]+$/ && NF == 5 {v = $4} END {print v}' "$tmp/tiny.txt")
  if awk -v a="$first" -v b="$last" 'BEGIN {exit !(a > 10 && b < a - 1.0)}' &&
     "$bin" info "$tmp/tiny.gguf" | grep -q "blocks kept *2 of 2" && grep -q '"tokens_per_second"' "$tmp/tiny.json"; then
    echo "ok   tiny-random, 20 steps on Blake: validation NLL on Macbeth $first -> $last"
  else
    echo "FAIL tiny run: val NLL $first -> $last"; cat "$tmp/tiny.txt"; fail=1
  fi
else
  echo "FAIL tiny run:"; cat "$tmp/tiny.txt"; fail=1
fi

# ---- from scratch: a 4-block teacher of a config's shape ----------------------------------------------
tiny_config "$tmp/cfg4.json"
t4="$tmp/t4.gguf"
ok "$bin" train --init random --config "$tmp/cfg4.json" --tokenizer "$spm" --data "$blake" --tokens 4096 --lr 1e-2 -o "$t4" $small
if "$bin" info "$t4" 2>/dev/null | grep -q "D 32, L 4, H 4, Hkv 2" && "$bin" tokenize "$t4" -p "Tyger" --count > /dev/null; then
  echo "ok   --init random: a 4-block model of cfg4.json with the tokenizer inside"
else
  echo "FAIL --init random model"; fail=1
fi
sed 's/"initializer_range": 0.02/"initializer_range": "x"/' "$tmp/cfg4.json" > "$tmp/cfgbad.json"
bad "cfgbad.json: initializer_range must be a number" "$bin" train --init random --config "$tmp/cfgbad.json" \
  --tokenizer "$spm" --data "$blake" --tokens 100 -o "$tmp/x.gguf"

# ---- distillation ---------------------------------------------------------------------------------------
kd_run() { # name key args...: must succeed, keep 2 blocks, report the key
  local name=$1 key=$2
  shift 2
  if "$bin" train "$@" --data "$blake" --tokens 1024 --lr 3e-3 -o "$tmp/$name.gguf" --output "$tmp/$name.json" $small \
       > "$tmp/$name.txt" 2>&1 && "$bin" info "$tmp/$name.gguf" | grep -q "blocks kept *2 of 2" &&
     grep -q "\"$key\":" "$tmp/$name.json"; then
    echo "ok   $name: $(grep -Eo "\"$key\":[^,]*" "$tmp/$name.json" | tail -1), $(tail -2 "$tmp/$name.txt" | head -1)"
  else
    echo "FAIL $name:"; cat "$tmp/$name.txt"; fail=1
  fi
}
kd_run vanilla kd_logits "$t4" --teacher "$t4" --kd vanilla --tau 2 --drop 2
kd_run minilm kd_relation "$t4" --teacher "$t4" --kd minilm --drop 2 --strategy output --optimizer lion --lr 1e-3
kd_run homotopic kd_hidden "$t4" --teacher "$t4" --kd homotopic --drop 2 --lambda 0.5 --recompute
"$bin" prune "$t4" --drop 2 --strategy middle -o "$tmp/p2.gguf" -q > /dev/null 2>&1
kd_run homotopic_pruned_file kd_hidden "$tmp/p2.gguf" --teacher "$t4" --kd homotopic
kd_run gradual removed_block "$t4" --teacher "$t4" --kd homotopic --drop 2 --drop-every 256
bad "need 2 comma-separated teacher block numbers" "$bin" train "$tmp/p2.gguf" --teacher "$t4" --kd homotopic \
  --data "$blake" --tokens 100 -o "$tmp/x.gguf" --teacher-blocks 0,1,2 $small
"$bin" prune "$t4" --drop 2 -o "$tmp/p2hf" -q > /dev/null 2>&1 # safetensors: no block map inside
bad "no slimlm.source_blocks" "$bin" train "$tmp/p2hf" --tokenizer "$spm" --teacher "$t4" --kd homotopic \
  --data "$blake" --tokens 100 -o "$tmp/x.gguf" $small
bad "the last of 2 removals would come after the last step" "$bin" train "$t4" --teacher "$t4" --kd vanilla --drop 2 \
  --drop-every 4096 --data "$blake" --tokens 1024 -o "$tmp/x.gguf" $small

# ---- resume is exact -------------------------------------------------------------------------------------
common=("$t4" --teacher "$t4" --kd homotopic+minilm --drop 2 --drop-every 512 --data "$blake" --tokens 2048 --ctx 64
        --batch 2 --accum 2 --lr 3e-3 -t 2 -q --checkpoint-every 0)
if "$bin" train "${common[@]}" -o "$tmp/straight.gguf" > /dev/null 2>&1 &&
   "$bin" train "${common[@]}" --max-steps 4 --checkpoint "$tmp/r.ckpt" -o "$tmp/half.gguf" > /dev/null 2>&1 &&
   "$bin" train "${common[@]}" --resume --checkpoint "$tmp/r.ckpt" -o "$tmp/resumed.gguf" > "$tmp/resume.txt" 2>&1 &&
   cmp -s "$tmp/straight.gguf" "$tmp/resumed.gguf" && ! cmp -s "$tmp/half.gguf" "$tmp/resumed.gguf"; then
  echo "ok   8 steps == 4 + --resume + 4, byte-identical model ($(grep -o '[0-9]* steps (4 -> 8)' "$tmp/resume.txt"))"
else
  echo "FAIL resume:"; cat "$tmp/resume.txt"; fail=1
fi
bad "checkpoint made with --batch 2, this run has 4" "$bin" train "$t4" --teacher "$t4" --kd homotopic+minilm --drop 2 \
  --drop-every 512 --data "$blake" --tokens 2048 --ctx 64 --batch 4 --accum 2 -q --resume --checkpoint "$tmp/r.ckpt" -o "$tmp/x.gguf"

# ---- safetensors output ----------------------------------------------------------------------------------
if "$bin" train "$t4" --data "$blake" --tokens 512 -o "$tmp/hf" $small > /dev/null 2>&1 &&
   [ -f "$tmp/hf/model.safetensors" ] && grep -q '"num_hidden_layers":[[:space:]]*4' "$tmp/hf/config.json"; then
  echo "ok   safetensors output"
else
  echo "FAIL safetensors output"; fail=1
fi
rm -rf "$tmp"
exit $fail
