#!/usr/bin/env bash
# slimlm quantize through the binary on SmolLM2-135M: pure int8 and
# LLM.int8 (outlier columns) GGUFs that slimlm loads back as int8 linears
# (info: every linear "int8", the lm head int8, under 2 bytes/parameter)
# and runs; the JSON report; the GGUF Q8_0 export (llama.cpp's own type);
# a safetensors directory of the dequantised values; grouped activations
# (--act-group 64: slimlm.int8.act_group in the file, and a file whose
# group or format version this reader cannot honour is refused in one
# line); the int8 embedding (--embd int8: smaller file, loads, generates,
# converts back to a tied F32 model, train refuses it); every usage error is one line "error: ..." with exit status 1
# and leaves no output behind.
set -u
bin="${SLM_BIN:?}"
model="${SLM_TEST_MODEL:?}"
tmp="${SLM_TEST_TMP:-/tmp}/quantize"
rm -rf "$tmp"
mkdir -p "$tmp"
. "$(dirname "$0")/lib.sh"

check_int8() { # file label
  local info
  info=$("$bin" info "$1" 2>&1)
  local n_int8 bpp
  n_int8=$(printf '%s\n' "$info" | grep -Eo ' int8 ' | wc -l)
  bpp=$(printf '%s\n' "$info" | sed -n 's/^weights held .* \([0-9.]*\) bytes\/parameter; lm head int8$/\1/p')
  if [ "$n_int8" -ne 210 ] || [ -z "$bpp" ] || ! awk -v b="$bpp" 'BEGIN { exit !(b > 1 && b < 2) }'; then
    echo "FAIL $2: $n_int8 int8 linears (want 210), bytes/parameter '$bpp'"; fail=1
  else
    echo "ok   $2: 210 int8 linears + int8 lm head, $bpp bytes/parameter"
  fi
}

if "$bin" quantize "$model" --int8 --outlier-threshold 0 -o "$tmp/pure.gguf" -q -t 2 > "$tmp/pure.txt" 2>&1; then
  check_int8 "$tmp/pure.gguf" "pure int8"
else
  echo "FAIL quantize --outlier-threshold 0:"; cat "$tmp/pure.txt"; fail=1
fi
if "$bin" quantize "$model" --int8 --batch 4 --seqlen 32 --gguf-q8_0 "$tmp/q8.gguf" -o "$tmp/llm.gguf" \
     --output "$tmp/llm.json" -q -t 2 > "$tmp/llm.txt" 2>&1; then
  check_int8 "$tmp/llm.gguf" "LLM.int8"
  if grep -q '"above_threshold"' "$tmp/llm.json" && grep -q '"bytes_per_param"' "$tmp/llm.json" &&
     grep -q '^kept [0-9]* of [0-9]* block-input columns' "$tmp/llm.txt"; then
    echo "ok   outlier report (table and JSON)"
  else
    echo "FAIL outlier report:"; cat "$tmp/llm.txt"; fail=1
  fi
  if "$bin" info "$tmp/q8.gguf" 2>&1 | grep -q 'Q8_0:211'; then
    echo "ok   --gguf-q8_0: 211 Q8_0 matrices (linears + embedding)"
  else
    echo "FAIL --gguf-q8_0"; fail=1
  fi
  out=$("$bin" generate "$tmp/llm.gguf" -p "The capital of France is" -n 4 --temp 0 -q -t 2 2>/dev/null)
  if [ -n "$out" ]; then echo "ok   generate with the int8 model: '$out'"; else echo "FAIL generate"; fail=1; fi
  bad "already int8" "$bin" quantize "$tmp/llm.gguf" --int8 --outlier-threshold 0 -o "$tmp/x.gguf" -q
else
  echo "FAIL quantize with outliers:"; cat "$tmp/llm.txt"; fail=1
fi
if "$bin" quantize "$model" --int8 --outlier-threshold 0 -o "$tmp/hf" -q -t 2 > /dev/null 2>&1 &&
   [ -f "$tmp/hf/model.safetensors" ] && "$bin" info "$tmp/hf" 2>&1 | grep -q '^weights held .* lm head float$'; then
  echo "ok   safetensors output (dequantised fp32)"
else
  echo "FAIL safetensors output"; fail=1
fi

# patch_u32 file key value: overwrite the u32 value of GGUF metadata key
# `key` (written after the key's bytes and its 4-byte type)
patch_u32() {
  local off
  off=$(grep -obUa "$2" "$1" | head -1 | cut -d: -f1)
  off=$((off + ${#2} + 4))
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($3 & 255)) $(($3 >> 8 & 255)) 0 0)" |
    dd of="$1" bs=1 seek="$off" conv=notrunc status=none
}
if "$bin" quantize "$model" --int8 --outlier-threshold 0 --act-group 64 -o "$tmp/g64.gguf" -q -t 2 > "$tmp/g64.txt" 2>&1; then
  check_int8 "$tmp/g64.gguf" "int8, activation groups of 64"
  if grep -q 'slimlm.int8.act_group' "$tmp/g64.gguf" &&
     [ -n "$("$bin" generate "$tmp/g64.gguf" -p "The capital of France is" -n 4 --temp 0 -q -t 2 2>/dev/null)" ]; then
    echo "ok   grouped model: act_group key written, generate runs"
  else
    echo "FAIL grouped model"; fail=1
  fi
  cp "$tmp/g64.gguf" "$tmp/g48.gguf" && patch_u32 "$tmp/g48.gguf" slimlm.int8.act_group 48
  bad "'slimlm.int8.act_group' = 48" "$bin" info "$tmp/g48.gguf"
  cp "$tmp/g64.gguf" "$tmp/v4.gguf" && patch_u32 "$tmp/v4.gguf" slimlm.format_version 4
  bad "slimlm format version 4, this slimlm reads up to 3" "$bin" info "$tmp/v4.gguf"
  rm -f "$tmp/g48.gguf" "$tmp/v4.gguf"
else
  echo "FAIL quantize --act-group 64:"; cat "$tmp/g64.txt"; fail=1
fi
bad "act-group must be 0 or a multiple of 32" "$bin" quantize "$model" --int8 --act-group 48 -o "$tmp/x.gguf"

# --embd int8: the tied lm head's int8 rows are the embedding (one matrix,
# slimlm.int8.embd), a smaller file that loads, runs and converts back
if "$bin" quantize "$model" --int8 --outlier-threshold 0 --act-group 64 --embd int8 -o "$tmp/e8.gguf" -q -t 2 \
     > "$tmp/e8.txt" 2>&1; then
  check_int8 "$tmp/e8.gguf" "int8 embedding"
  info=$("$bin" info "$tmp/e8.gguf" 2>&1)
  out=$("$bin" generate "$tmp/e8.gguf" -p "The capital of France is" -n 4 --temp 0 -q -t 2 2>/dev/null)
  e8=$(stat -c %s "$tmp/e8.gguf")
  g64=$(stat -c %s "$tmp/g64.gguf" 2>/dev/null || echo 0)
  if printf '%s\n' "$info" | grep -q "^embedding .*int8.*the lm head's matrix" &&
     grep -q 'slimlm.int8.embd' "$tmp/e8.gguf" && [ -n "$out" ] && [ "$e8" -lt $((g64 * 3 / 4)) ]; then
    echo "ok   int8 embedding: one matrix with the lm head, $e8 bytes (fp16 embedding $g64), generate: '$out'"
  else
    echo "FAIL int8 embedding: info / key / generate '$out' / $e8 bytes vs $g64"; fail=1
  fi
  back=""
  if "$bin" convert "$tmp/e8.gguf" -o "$tmp/e8_f32.gguf" -q -t 2 &&
     "$bin" info "$tmp/e8_f32.gguf" 2>&1 | grep -q 'tied embeddings'; then
    back=$("$bin" generate "$tmp/e8_f32.gguf" -p "The capital of France is" -n 4 --temp 0 -q -t 2 2>/dev/null)
  fi
  if [ -n "$back" ] && [ "$back" = "$out" ]; then
    echo "ok   convert of the int8-embedding model: F32, still tied, same greedy text"
  else
    echo "FAIL convert of the int8-embedding model"; fail=1
  fi
  printf 'Some text to train on, long enough for one sequence of sixteen tokens or more.\n' > "$tmp/t.txt"
  bad "token embedding is int8: training needs fp32" "$bin" train "$tmp/e8.gguf" --data "$tmp/t.txt" --tokens 64 \
    -b 1 -c 16 -o "$tmp/x.gguf" -q -t 2
  rm -f "$tmp/e8.gguf" "$tmp/e8_f32.gguf"
else
  echo "FAIL quantize --embd int8:"; cat "$tmp/e8.txt"; fail=1
fi
rm -f "$tmp/g64.gguf"
bad "embd int8 is the int8 lm head's rows" "$bin" quantize "$model" --int8 --embd int8 --keep-lm-head -o "$tmp/x.gguf"

bad "--int8 is required" "$bin" quantize "$model" -o "$tmp/x.gguf"
bad "-o OUT is required" "$bin" quantize "$model" --int8
bad "outlier-threshold must be >= 0" "$bin" quantize "$model" --int8 --outlier-threshold -1 -o "$tmp/x.gguf"
bad "max-outliers must be in" "$bin" quantize "$model" --int8 --max-outliers 2 -o "$tmp/x.gguf"
bad "embd must be f16, f32 or int8, not 'f8'" "$bin" quantize "$model" --int8 --embd f8 -o "$tmp/x.gguf"
bad "embd must be f16, f32 or int8, not 'bogus'" "$bin" quantize "$model" --int8 --embd bogus -o "$tmp/x.gguf"
bad "$tmp/missing.gguf: cannot open" "$bin" quantize "$tmp/missing.gguf" --int8 -o "$tmp/x.gguf"
head -c 1000 "$model" > "$tmp/truncated.gguf"
bad "$tmp/truncated.gguf: " "$bin" quantize "$tmp/truncated.gguf" --int8 -o "$tmp/x.gguf"
bad "not found\|cannot\|missing" "$bin" quantize "$model" --int8 --calib text:nonexistent.txt -o "$tmp/x.gguf" -q
if [ -e "$tmp/x.gguf" ]; then echo "FAIL a failed quantize left $tmp/x.gguf"; fail=1; fi
rm -rf "$tmp"
exit $fail
