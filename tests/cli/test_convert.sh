#!/usr/bin/env bash
# slimlm convert through the binary: HF -> GGUF -> HF gives a byte-identical
# model.safetensors to a direct HF -> HF conversion; dtypes and formats are
# chosen by flag or extension; every usage error is one line "error: ..."
# with exit status 1 and leaves no output or temporary directory behind.
set -u
bin="${SLM_BIN:?}"
data="${SLM_DATA_DIR:?}"
tmp="${SLM_TEST_TMP:-/tmp}/convert"
tiny="$data/models/tiny-random-LlamaForCausalLM"
rm -rf "$tmp"
mkdir -p "$tmp"
. "$(dirname "$0")/lib.sh"

ok "$bin" convert --help
ok "$bin" convert "$tiny" -o "$tmp/direct" --quiet
ok "$bin" convert "$tiny" -o "$tmp/tiny.gguf"
ok "$bin" convert "$tmp/tiny.gguf" -o "$tmp/back" --format safetensors
if ! cmp -s "$tmp/direct/model.safetensors" "$tmp/back/model.safetensors"; then
  echo "FAIL HF -> GGUF -> HF model.safetensors differs from HF -> HF"; fail=1
else
  echo "ok   HF -> GGUF -> HF model.safetensors byte-identical to HF -> HF"
fi
cmp -s "$tmp/direct/config.json" "$tmp/back/config.json" || { echo "FAIL config.json changed through GGUF"; fail=1; }

# dtypes: the info table reports what the file holds
ok "$bin" convert "$tiny" -o "$tmp/f16" --dtype f16
"$bin" info "$tmp/f16" | grep -q "F16:21" || { echo "FAIL f16 output is not 21 F16 tensors"; fail=1; }
ok "$bin" convert "$tiny" -o "$tmp/bf16" --dtype BF16
"$bin" info "$tmp/bf16" | grep -q "BF16:21" || { echo "FAIL bf16 output is not 21 BF16 tensors"; fail=1; }
ok "$bin" convert "$tiny" -o "$tmp/q8.gguf" --dtype q8_0
"$bin" info "$tmp/q8.gguf" | grep -q "Q8_0" || { echo "FAIL q8_0 GGUF holds no Q8_0 tensors"; fail=1; }
p_src=$("$bin" info --json "$tiny" | grep '"n_params"')
p_out=$("$bin" info --json "$tmp/q8.gguf" | grep '"n_params"')
[ "$p_src" = "$p_out" ] || { echo "FAIL parameter count changed: $p_src vs $p_out"; fail=1; }

# usage errors and unwritable outputs
bad "missing -o" "$bin" convert "$tiny"
bad "unknown --dtype 'q4'" "$bin" convert "$tiny" -o "$tmp/x" --dtype q4
bad "unknown --format 'onnx'" "$bin" convert "$tiny" -o "$tmp/x" --format onnx
bad "q8_0 is GGUF only" "$bin" convert "$tiny" -o "$tmp/x" --dtype q8_0
bad "nope: cannot open" "$bin" convert "$tmp/nope" -o "$tmp/x"
bad "no/such/dir" "$bin" convert "$tiny" -o "$tmp/no/such/dir/out"
touch "$tmp/a_file"
bad "not a directory" "$bin" convert "$tiny" -o "$tmp/a_file"
[ ! -e "$tmp/x" ] || { echo "FAIL failed conversions left $tmp/x"; fail=1; }
left=$(find "$tmp" -name '*.tmp.*' | head -n 3)
[ -z "$left" ] || { echo "FAIL temporary files left: $left"; fail=1; }
exit $fail
