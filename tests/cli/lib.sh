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
