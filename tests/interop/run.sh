#!/usr/bin/env bash
# Interop suite: the bank demo against an independent, OpenID-certified provider (npm
# oidc-provider), over loopback. Needs node (>= 20) and npm; runnable from any directory.
#
#   1. npm ci here, cargo build -p bank-demo -p grpc-bank -p interop-client
#   2. provider.mjs on a free port (key generation 1, random kids), the demo pointed at it by
#      discovery (STEPUP_ISSUER, no STEPUP_JWKS_URI; STEPUP_JWKS_COOLDOWN=2 s between forced
#      key refetches)
#   3. interop-client --phase main: RS256/ES256/EdDSA/Ed25519 tokens, the RFC 9470 loop, refusals
#   4. the provider restarted on the same port with new keys (generation 2, --fixed-kids: kids
#      fixed-rs256 etc., none in common with generation 1), the demo left running;
#      interop-client --phase rotation
#   5. the provider restarted again with new key material under the same kids (generation 3,
#      --fixed-kids), the demo left running; interop-client --phase reuse (a bad signature
#      under a known kid must make the demo refetch the keys, at most once per cooldown)
#   6. interop-client --phase dpop (RFC 9449), same provider and demo: DPoP-bound tokens from the
#      provider (proof, nonce), the RFC 9470 loop with proofs, replay/downgrade/htu/htm refusals.
#      The demo runs with STEPUP_DPOP=allowed (bearer tokens keep working for the phases before),
#      BANK_PUBLIC_URL=<its URL> (the origin of `htu`) and the in-memory replay cache
#      (STEPUP_REPLAY_REDIS unset), no demo nonces (STEPUP_DPOP_NONCE_SECRET unset)
#   7. interop-client --phase grpc: examples/grpc-bank (the bank's gRPC service and HTTP routes on
#      one port) started next to the demo with the same environment, same provider (generation
#      3): with a tonic client, GetBalance with a password-level token, Transfer refused with
#      UNAUTHENTICATED and the RFC 9470 challenge in the metadata, Transfer after the step-up
#   8. one total line: `N passed, M failed`; exit code non-zero on any failure
#
# Logs of the provider and the demo are printed when something failed (INTEROP_KEEP_LOGS=1
# keeps them). INTEROP_STARTUP_TIMEOUT / INTEROP_PHASE_TIMEOUT: seconds (60 / 120).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../lib.sh
. "$ROOT/tests/lib.sh"
STARTUP_TIMEOUT="${INTEROP_STARTUP_TIMEOUT:-60}"
PHASE_TIMEOUT="${INTEROP_PHASE_TIMEOUT:-120}"

die() {
  printf 'interop: %s\n' "$*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || die "node is not installed (needed for oidc-provider; Node.js >= 20)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (needed to install oidc-provider)"
command -v cargo >/dev/null 2>&1 || die "cargo is not installed"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js >= 20 is needed, found $(node --version)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/stepup-interop.XXXXXX")"
PROVIDER_PID=""
DEMO_PID=""
GRPC_PID=""
STATUS=1

cleanup() {
  stop_pid "$GRPC_PID"
  stop_pid "$DEMO_PID"
  stop_pid "$PROVIDER_PID"
  if [ "$STATUS" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      printf '\n---- %s (last 40 lines) ----\n' "$(basename "$log")" >&2
      tail -n 40 "$log" >&2
    done
  fi
  if [ "${INTEROP_KEEP_LOGS:-}" = 1 ]; then
    echo "interop: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --locked \
  | node "$HERE/util.mjs" target-dir bank-demo grpc-bank interop-client)" \
  || die "cargo metadata: the workspace must have bank-demo, grpc-bank and interop-client (tests/interop/client) as members"

echo "==> npm ci (tests/interop)"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)

echo "==> cargo build -p bank-demo -p grpc-bank -p interop-client"
(cd "$ROOT" && cargo build --locked -p bank-demo -p grpc-bank -p interop-client)
DEMO_BIN="$TARGET_DIR/debug/bank-demo"
GRPC_BIN="$TARGET_DIR/debug/grpc-bank"
CLIENT_BIN="$TARGET_DIR/debug/interop-client"
[ -x "$DEMO_BIN" ] || die "missing $DEMO_BIN"
[ -x "$GRPC_BIN" ] || die "missing $GRPC_BIN"
[ -x "$CLIENT_BIN" ] || die "missing $CLIENT_BIN"

mapfile -t PORTS < <(node "$HERE/util.mjs" free-ports 3)
PROVIDER_PORT="${PORTS[0]}"
BANK_PORT="${PORTS[1]}"
GRPC_PORT="${PORTS[2]}"
ISSUER="http://127.0.0.1:$PROVIDER_PORT"
BANK="http://127.0.0.1:$BANK_PORT"
GRPC_BANK="http://127.0.0.1:$GRPC_PORT"

# start_provider GENERATION [provider.mjs options, e.g. --fixed-kids]
start_provider() {
  local generation="$1"
  shift
  node "$HERE/provider.mjs" --port "$PROVIDER_PORT" --generation "$generation" "$@" \
    >>"$WORK/provider.log" 2>&1 &
  PROVIDER_PID=$!
  node "$HERE/util.mjs" wait "$ISSUER/.well-known/openid-configuration" "$STARTUP_TIMEOUT" "$PROVIDER_PID" \
    || die "the provider (generation $generation) did not start"
  echo "    provider pid $PROVIDER_PID at $ISSUER, key generation $generation${*:+ ($*)}"
}

# restart_provider GENERATION [provider.mjs options]: same port; the demo keeps running.
restart_provider() {
  stop_pid "$PROVIDER_PID"
  PROVIDER_PID=""
  start_provider "$@"
  kill -0 "$DEMO_PID" 2>/dev/null || die "the demo exited"
}

# Fails (and counts a failed check) when the demo is gone.
demo_still_running() {
  if ! kill -0 "$DEMO_PID" 2>/dev/null; then
    echo "FAIL  the demo (pid $DEMO_PID) is no longer running"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    return 1
  fi
}

TOTAL_PASSED=0
TOTAL_FAILED=0

# Runs one client phase, shows its check lines and adds its counts to the totals.
run_phase() {
  local phase="$1" bank="${2:-$BANK}" rc=0 line passed failed
  timeout "$PHASE_TIMEOUT" "$CLIENT_BIN" --bank "$bank" --issuer "$ISSUER" --phase "$phase" \
    --state "$WORK/state.json" >"$WORK/$phase.out" 2>"$WORK/client-$phase.log" || rc=$?
  line="$(tail -n 1 "$WORK/$phase.out")"
  # Every line but the phase's own total, which goes into the final one.
  if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed="${BASH_REMATCH[1]}"
    failed="${BASH_REMATCH[2]}"
    sed '$d' "$WORK/$phase.out"
  else
    # Cut short (timeout, crash): count the check lines it did print.
    cat "$WORK/$phase.out"
    passed="$(grep -c '^PASS ' "$WORK/$phase.out" || true)"
    failed="$(grep -c '^FAIL ' "$WORK/$phase.out" || true)"
  fi
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "FAIL  client phase $phase exited with status $rc without a failed check"
    failed=1
  fi
  echo "    (phase $phase: $passed checks passed, $failed failed)"
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
}

echo "==> starting oidc-provider"
start_provider 1

# start_bank BINARY PORT URL NAME: a bank (the demo, or grpc-bank: same environment) pointed at
# the provider by discovery; its pid in BANK_PID, its log in $WORK/NAME.log.
start_bank() {
  local bin="$1" port="$2" url="$3" name="$4"
  env -u STEPUP_JWKS_URI -u STEPUP_TRANSFER_ACR -u STEPUP_ACCEPT_TYP -u STEPUP_RESOURCE \
    -u STEPUP_CLIENT_CLAIM -u STEPUP_OMIT_CLAIMS -u STEPUP_REPLAY_REDIS -u STEPUP_DPOP_NONCE_SECRET \
    STEPUP_ISSUER="$ISSUER" STEPUP_AUDIENCE=bank-api BANK_ADDR="127.0.0.1:$port" STEPUP_JWKS_COOLDOWN=2 \
    STEPUP_DPOP=allowed BANK_PUBLIC_URL="$url" \
    RUST_LOG="${RUST_LOG:-info,stepup_tower=debug}" NO_COLOR=1 \
    "$bin" >"$WORK/$name.log" 2>&1 &
  BANK_PID=$!
  node "$HERE/util.mjs" wait "$url/healthz" "$STARTUP_TIMEOUT" "$BANK_PID" || return 1
  echo "    $name pid $BANK_PID at $url"
}

echo "==> starting the demo (STEPUP_ISSUER=$ISSUER, discovery, STEPUP_JWKS_COOLDOWN=2, STEPUP_DPOP=allowed)"
DEMO_OK=0
start_bank "$DEMO_BIN" "$BANK_PORT" "$BANK" demo && DEMO_OK=1
DEMO_PID=$BANK_PID
[ "$DEMO_OK" = 1 ] || die "the demo did not start"

echo "==> phase main"
run_phase main

echo "==> restarting oidc-provider with new keys and kids (same port; the demo keeps running)"
restart_provider 2 --fixed-kids

echo "==> phase rotation"
run_phase rotation
if demo_still_running; then
  echo "==> restarting oidc-provider with new key material under the same kids (the demo keeps running)"
  restart_provider 3 --fixed-kids

  echo "==> phase reuse"
  run_phase reuse

  if demo_still_running; then
    echo "==> phase dpop (RFC 9449; same provider and demo)"
    run_phase dpop
    demo_still_running || true
  else
    echo "    (phase dpop skipped: the demo is gone)"
  fi
else
  echo "    (phases reuse and dpop skipped: the demo is gone)"
fi

echo "==> starting grpc-bank next to the demo (same environment, same provider)"
GRPC_OK=0
start_bank "$GRPC_BIN" "$GRPC_PORT" "$GRPC_BANK" grpc-bank && GRPC_OK=1
GRPC_PID=$BANK_PID
if [ "$GRPC_OK" = 1 ]; then
  echo "==> phase grpc (tonic client; same provider)"
  run_phase grpc "$GRPC_BANK"
else
  echo "FAIL  grpc-bank did not start (phase grpc skipped)"
  TOTAL_FAILED=$((TOTAL_FAILED + 1))
fi

if [ "$TOTAL_FAILED" -eq 0 ]; then
  STATUS=0
fi
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
exit "$STATUS"
