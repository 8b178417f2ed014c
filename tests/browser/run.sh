#!/usr/bin/env bash
# End-to-end browser test of the bank demo (headless Chromium driven by playwright-core).
#
#   bash tests/browser/run.sh        # from any directory
#
# Installs Debian's Chromium when /usr/bin/chromium is missing, runs the SPA's unit tests, and
# drives two scenarios on free loopback ports, always stopping what it started:
#
#   1. browser.mjs: bank-demo with its embedded provider; login → step-up (cancelled in the SPA,
#      cancelled at the provider, then done) → transfer → /ops (the metrics chart) → logout →
#      login → two transfers, one step-up → logout fallback. The SPA's step-up client is clients/stepup-fetch.
#   2. oidc-client-ts.mjs: the same SPA on oidc-client-ts (stepup-fetch's adapter,
#      tests/interop/spa/) against the npm oidc-provider of tests/interop (provider.mjs
#      --spa-redirect) and a second bank-demo pointed at it (STEPUP_ISSUER).
#
# Ends with one total line `N passed, M failed`. Without a browser it fails under CI and only
# warns (loudly) elsewhere.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../lib.sh
. "$ROOT/tests/lib.sh"
CHROMIUM=/usr/bin/chromium

say() { printf '\n==> %s\n' "$*"; }

skip_or_fail() {
  local reason="$1"
  printf '\n'
  printf '%s\n' '############################################################################'
  printf '%s\n' "#  BROWSER TEST SKIPPED: $reason"
  printf '%s\n' '############################################################################'
  printf '\n'
  if [ -n "${CI:-}" ]; then
    echo "CI is set: a skipped browser test is a failure." >&2
    exit 1
  fi
  exit 0
}

# --- Chromium -------------------------------------------------------------------------------
if [ ! -x "$CHROMIUM" ]; then
  say "installing Chromium (Debian package)"
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
    if ! { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium; }; then
      echo "apt-get could not install chromium" >&2
    fi
  fi
fi
if [ ! -x "$CHROMIUM" ]; then
  skip_or_fail "$CHROMIUM is missing and could not be installed with apt-get"
fi
"$CHROMIUM" --version 2>/dev/null || true

# --- Node and the SPA's unit tests ------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  skip_or_fail "node and npm are needed"
fi

say "node --test examples/bank-demo/web/ (SPA unit tests)"
(cd "$ROOT" && node --test examples/bank-demo/web/)

say "npm ci (tests/browser)"
(cd "$HERE" && npm ci --no-audit --no-fund)

# --- The server -------------------------------------------------------------------------------
say "cargo build -p bank-demo"
(cd "$ROOT" && cargo build -p bank-demo)
TARGET_DIR="$(cd "$ROOT" && target_dir)"
BIN="$TARGET_DIR/debug/bank-demo"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

PORT="$(free_port)"
URL="http://127.0.0.1:$PORT"

LOG_DIR="$TARGET_DIR/browser-screenshots"
mkdir -p "$LOG_DIR"
SERVER_LOG="$LOG_DIR/server.log"

SERVER_PID=""
PIDS=()
cleanup() {
  stop_pid "$SERVER_PID"
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting bank-demo on $URL (log: ${SERVER_LOG#"$ROOT"/})"
# The demo talks to its own embedded provider only: no external issuer from the environment.
env -u STEPUP_ISSUER -u STEPUP_JWKS_URI -u STEPUP_RESOURCE -u BANK_PUBLIC_URL \
  BANK_ADDR="127.0.0.1:$PORT" RUST_LOG="${RUST_LOG:-info}" "$BIN" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

if ! wait_http "$URL/healthz" 60 "$SERVER_PID"; then
  echo "bank-demo did not answer $URL/healthz within 60 s (or exited); its log:" >&2
  cat "$SERVER_LOG" >&2
  exit 1
fi

# --- The browser ------------------------------------------------------------------------------
TOTAL_PASSED=0
TOTAL_FAILED=0
# count OUTPUT_FILE STATUS: adds the scenario's `N passed, M failed` line to the totals.
count() {
  local line passed failed
  line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1 || true)"
  if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed="${BASH_REMATCH[1]}"
    failed="${BASH_REMATCH[2]}"
  else
    passed="$(grep -c '^PASS ' "$1" || true)"
    failed="$(grep -c '^FAIL ' "$1" || true)"
  fi
  if [ "$2" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
}

say "node tests/browser/browser.mjs $URL"
status=0
set +e +o pipefail
(cd "$ROOT" && CHROMIUM_PATH="$CHROMIUM" node tests/browser/browser.mjs "$URL") 2>&1 | tee "$LOG_DIR/browser.out"
status="${PIPESTATUS[0]}"
set -e -o pipefail
count "$LOG_DIR/browser.out" "$status"
if [ "$status" -ne 0 ]; then
  echo "browser test failed; server log (last 40 lines):" >&2
  tail -n 40 "$SERVER_LOG" >&2 || true
fi
stop_pid "$SERVER_PID"
SERVER_PID=""

# --- The second scenario: oidc-client-ts against oidc-provider ------------------------------
INTEROP="$ROOT/tests/interop"
say "npm ci (tests/interop: oidc-provider, oidc-client-ts)"
(cd "$INTEROP" && npm ci --no-audit --no-fund --loglevel=error)
mapfile -t PORTS < <(node "$INTEROP/util.mjs" free-ports 3)
ISSUER="http://127.0.0.1:${PORTS[0]}"
BANK2="http://127.0.0.1:${PORTS[1]}"
SPA="http://127.0.0.1:${PORTS[2]}"
status2=0
started() {
  # started NAME URL PID: waits until URL answers 2xx.
  if ! wait_http "$2" 60 "$3"; then
    echo "$1 did not start; its log:" >&2
    cat "$LOG_DIR/$1.log" >&2 || true
    return 1
  fi
}
say "oidc-provider at $ISSUER (client interop-spa for $SPA/)"
node "$INTEROP/provider.mjs" --port "${PORTS[0]}" --spa-redirect "$SPA/" >"$LOG_DIR/provider.log" 2>&1 &
PIDS+=($!)
started provider "$ISSUER/.well-known/openid-configuration" "${PIDS[-1]}" || status2=1
if [ "$status2" -eq 0 ]; then
  say "bank-demo at $BANK2 (STEPUP_ISSUER=$ISSUER)"
  env -u STEPUP_JWKS_URI -u STEPUP_RESOURCE -u STEPUP_TRANSFER_ACR -u STEPUP_ACCEPT_TYP -u STEPUP_CLIENT_CLAIM \
    -u STEPUP_OMIT_CLAIMS -u STEPUP_REQUIRED_SCOPE -u BANK_PUBLIC_URL \
    STEPUP_ISSUER="$ISSUER" STEPUP_AUDIENCE=bank-api BANK_ADDR="127.0.0.1:${PORTS[1]}" RUST_LOG="${RUST_LOG:-info}" \
    "$BIN" >"$LOG_DIR/bank-oidc-provider.log" 2>&1 &
  PIDS+=($!)
  started bank-oidc-provider "$BANK2/healthz" "${PIDS[-1]}" || status2=1
fi
if [ "$status2" -eq 0 ]; then
  say "the SPA on oidc-client-ts at $SPA (tests/interop/spa/server.mjs)"
  node "$INTEROP/spa/server.mjs" --port "${PORTS[2]}" --bank "$BANK2" --issuer "$ISSUER" >"$LOG_DIR/spa.log" 2>&1 &
  PIDS+=($!)
  started spa "$SPA/config.json" "${PIDS[-1]}" || status2=1
fi
if [ "$status2" -eq 0 ]; then
  say "node tests/browser/oidc-client-ts.mjs $SPA"
  set +e +o pipefail
  (cd "$ROOT" && CHROMIUM_PATH="$CHROMIUM" node tests/browser/oidc-client-ts.mjs "$SPA") 2>&1 | tee "$LOG_DIR/oidc-client-ts.out"
  status2="${PIPESTATUS[0]}"
  set -e -o pipefail
  count "$LOG_DIR/oidc-client-ts.out" "$status2"
  if [ "$status2" -ne 0 ]; then
    for log in provider bank-oidc-provider spa; do
      echo "---- $log.log (last 30 lines) ----" >&2
      tail -n 30 "$LOG_DIR/$log.log" >&2 || true
    done
  fi
else
  echo "FAIL the oidc-client-ts scenario could not start its servers"
  TOTAL_FAILED=$((TOTAL_FAILED + 1))
fi

echo
echo "browser scenarios: embedded provider ($LOG_DIR/browser.out), oidc-client-ts + oidc-provider ($LOG_DIR/oidc-client-ts.out)"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ] && [ "$status" -eq 0 ] && [ "$status2" -eq 0 ]
