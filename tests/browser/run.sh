#!/usr/bin/env bash
# End-to-end browser test of the bank demo (headless Chromium driven by playwright-core).
#
#   bash tests/browser/run.sh        # from any directory
#
# Installs Debian's Chromium when /usr/bin/chromium is missing, runs the SPA's unit tests,
# builds and starts bank-demo on a free loopback port, drives the login → step-up (cancelled in
# the SPA, cancelled at the provider, then done) → transfer → logout → login scenario, and
# always stops the server. Without a browser it fails under CI and only warns
# (loudly) elsewhere.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
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
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/debug/bank-demo"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

if command -v python3 >/dev/null 2>&1; then
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
else
  PORT="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
fi
URL="http://127.0.0.1:$PORT"

LOG_DIR="$TARGET_DIR/browser-screenshots"
mkdir -p "$LOG_DIR"
SERVER_LOG="$LOG_DIR/server.log"

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting bank-demo on $URL (log: ${SERVER_LOG#"$ROOT"/})"
# The demo talks to its own embedded provider only: no external issuer from the environment.
env -u STEPUP_ISSUER -u STEPUP_JWKS_URI -u STEPUP_RESOURCE -u BANK_PUBLIC_URL \
  BANK_ADDR="127.0.0.1:$PORT" RUST_LOG="${RUST_LOG:-info}" "$BIN" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

probe() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 1 -o /dev/null "$1" 2>/dev/null
  else
    node -e '
      const ac = new AbortController(); setTimeout(() => ac.abort(), 1000).unref();
      fetch(process.argv[1], { signal: ac.signal }).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1));
    ' "$1" 2>/dev/null
  fi
}
ready=""
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "bank-demo exited before it was ready; its log:" >&2
    cat "$SERVER_LOG" >&2
    exit 1
  fi
  if probe "$URL/healthz"; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "bank-demo did not answer $URL/healthz within 60 s; its log:" >&2
  cat "$SERVER_LOG" >&2
  exit 1
fi

# --- The browser ------------------------------------------------------------------------------
say "node tests/browser/browser.mjs $URL"
status=0
(cd "$ROOT" && CHROMIUM_PATH="$CHROMIUM" node tests/browser/browser.mjs "$URL") || status=$?
if [ "$status" -ne 0 ]; then
  echo "browser test failed; server log (last 40 lines):" >&2
  tail -n 40 "$SERVER_LOG" >&2 || true
fi
exit "$status"
