# Shared by the tests/cli/test_*.sh scripts (sourced, not run): checks that
# record a failure in $fail and print one "ok"/"FAIL" line each.
fail=0

ok() { # command...: must succeed
  if ! out=$("$@" 2>&1); then echo "FAIL ($?): $*: $out"; fail=1; else echo "ok   $*"; fi
}

bad() { # fragment command...: must fail with exit 1 and one "error: ...fragment..." line
  local frag=$1 err rc lines
  shift
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  if [ "$rc" -ne 1 ] || [ "$lines" -ne 1 ] || ! printf '%s' "$err" | grep -q "^error: .*$frag"; then
    echo "FAIL $*: rc $rc, $lines lines, want 'error: ...$frag': $err"; fail=1
  else
    echo "ok   $err"
  fi
}

tiny_config() { # file: HF config.json of a 4-block LLaMA (D 32, F 64, GQA 4/2, the LLaMA SPM vocabulary's 32000 ids)
  cat > "$1" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "vocab_size": 32000, "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
 "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02}
EOF
}
