#!/usr/bin/env bash
# Builds and runs examples/minimal on a free loopback port and checks its two routes: `/` open
# (200), `/transfer` without a token (401 with a Bearer challenge). Also checks that the crate
# README shows this example's code verbatim. Prints `N passed, M failed`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=../../tests/lib.sh
. tests/lib.sh
passed=0
failed=0
check() {
  if [ "$2" = "$3" ]; then
    echo "PASS  $1"
    passed=$((passed + 1))
  else
    echo "FAIL  $1: expected $3, got $2"
    failed=$((failed + 1))
  fi
}
# The crate README's example is this code.
readme_code="$(awk '/<!-- minimal:begin -->/{f=1;next}/<!-- minimal:end -->/{f=0}f' crates/stepup-tower/README.md | sed '1d;$d')"
if [ "$readme_code" = "$(cat examples/minimal/src/main.rs)" ]; then
  check "crates/stepup-tower/README.md shows examples/minimal/src/main.rs" same same
else
  check "crates/stepup-tower/README.md shows examples/minimal/src/main.rs" different same
fi
cargo build --locked -q -p minimal
bin="$(target_dir)/debug/minimal"
out="$(mktemp)"
ADDR=127.0.0.1:0 "$bin" >"$out" 2>&1 &
pid=$!
trap 'stop_pid $pid; rm -f "$out"' EXIT
wait_log "$out" "^listening on" 10 "$pid" || true
url="$(sed -n 's/^listening on //p' "$out")"
[ -n "$url" ] || { echo "FAIL  minimal did not start:"; cat "$out"; exit 1; }
check "GET / is open" "$(curl -s -o /dev/null -w '%{http_code}' "$url/")" 200
check "POST /transfer without a token: 401" "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/transfer")" 401
check "POST /transfer without a token: Bearer challenge" \
  "$(curl -s -D - -o /dev/null -X POST "$url/transfer" | grep -ci '^www-authenticate: Bearer realm="bank"')" 1
check "POST /transfer with a garbage token: invalid_token" \
  "$(curl -s -D - -o /dev/null -X POST -H 'Authorization: Bearer abc.def.ghi' "$url/transfer" | grep -c 'error="invalid_token"')" 1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
