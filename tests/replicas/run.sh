#!/usr/bin/env bash
# DPoP replay detection across replicas (RFC 9449 §11.1) with a real Redis.
#
#   bash tests/replicas/run.sh        # from any directory
#
# Installs Debian's redis-server when it is missing, starts it on a free loopback port (no
# persistence, its own temp dir) and, always stopping what it started:
#
#   1. runs the RedisReplayStore tests against it (`#[ignore]`d in
#      crates/stepup-tower/src/dpop/redis.rs: fresh/replayed, expiry, two stores, a race, and a
#      server of their own stopped and restarted);
#   2. starts two bank-demo replicas sharing it (A with the embedded provider, B trusting A's
#      issuer; both `BANK_PUBLIC_URL` = A's URL) and drives them with the `replicas::*` tests of
#      examples/bank-demo/tests/e2e/replicas.rs: a proof spent on A is a replay on B; Redis
#      stopped → 503 with Retry-After, both processes alive; Redis restarted → 200 again;
#      then checks the replicas' logs (no panic; the 503 logged naming the failure);
#   3. measures the Redis insert latency (crates/stepup-tower/benches/replay_redis.rs), unless
#      REPLICAS_BENCH=0.
#
# Ends with one total line `N passed, M failed`. Without redis-server it fails under CI and only
# warns (loudly) elsewhere.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../lib.sh
. "$ROOT/tests/lib.sh"

say() { printf '\n==> %s\n' "$*"; }

skip_or_fail() {
  local reason="$1"
  printf '\n'
  printf '%s\n' '############################################################################'
  printf '%s\n' "#  REPLICA / REDIS TESTS SKIPPED: $reason"
  printf '%s\n' '############################################################################'
  printf '\n'
  if [ -n "${CI:-}" ]; then
    echo "CI is set: skipped Redis tests are a failure." >&2
    exit 1
  fi
  exit 0
}

# --- redis-server ---------------------------------------------------------------------------
REDIS_SERVER="$(command -v redis-server || true)"
if [ -z "$REDIS_SERVER" ]; then
  say "installing redis-server (Debian package)"
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
    if ! { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y redis-server; }; then
      echo "apt-get could not install redis-server" >&2
    fi
  fi
  REDIS_SERVER="$(command -v redis-server || true)"
  if [ -z "$REDIS_SERVER" ] && [ -x /usr/bin/redis-server ]; then REDIS_SERVER=/usr/bin/redis-server; fi
fi
if [ -z "$REDIS_SERVER" ]; then
  skip_or_fail "redis-server is missing and could not be installed with apt-get"
fi
"$REDIS_SERVER" --version

# --- builds first, so that nothing waits on the compiler while servers run ---------------------
say "cargo build -p bank-demo; test and bench binaries"
(cd "$ROOT" && cargo build -p bank-demo)
(cd "$ROOT" && cargo test -p bank-demo --test e2e --no-run)
(cd "$ROOT" && cargo test -p stepup-tower --features redis --lib --no-run)
TARGET_DIR="$(cd "$ROOT" && target_dir)"
BIN="$TARGET_DIR/debug/bank-demo"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/stepup-replicas.XXXXXX")"
LOG_DIR="$TARGET_DIR/replicas"
mkdir -p "$LOG_DIR" "$WORK/redis"
rm -f "$LOG_DIR"/*.log "$LOG_DIR"/*.out

REDIS_PID=""
A_PID=""
B_PID=""
cleanup() {
  stop_pid "$A_PID"
  stop_pid "$B_PID"
  stop_pid "$REDIS_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

REDIS_PORT="$(free_port)"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# redis_ping: whether the server answers PING with PONG.
redis_ping() {
  python3 - "$REDIS_PORT" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
PY
}

start_redis() {
  "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK/redis" --daemonize no >>"$LOG_DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  local deadline=$((SECONDS + 20))
  until redis_ping; do
    if ! kill -0 "$REDIS_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "redis-server did not answer on port $REDIS_PORT; its log:" >&2
      cat "$LOG_DIR/redis.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}

stop_redis() {
  stop_pid "$REDIS_PID"
  REDIS_PID=""
}

PASSED=0
FAILED=0
# check NAME COMMAND...: runs COMMAND, counts it as one passed or failed check.
check() {
  local name="$1"
  shift
  say "$name"
  if "$@"; then
    PASSED=$((PASSED + 1))
    echo "PASS $name"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL $name"
  fi
}

say "redis-server on $REDIS_URL (log: ${LOG_DIR#"$ROOT"/}/redis.log)"
start_redis

# --- 1. the store against the real server ------------------------------------------------------
store_tests() {
  (cd "$ROOT" && STEPUP_TEST_REDIS_URL="$REDIS_URL" STEPUP_TEST_REDIS_SERVER="$REDIS_SERVER" \
    cargo test -p stepup-tower --features redis --lib -- --ignored dpop::redis::)
}
check "RedisReplayStore tests against redis-server" store_tests

# --- 2. two replicas -------------------------------------------------------------------------
A_PORT="$(free_port)"
B_PORT="$(free_port)"
A="http://127.0.0.1:$A_PORT"
B="http://127.0.0.1:$B_PORT"

# start_replica NAME PORT [VAR=VALUE...]: one bank-demo, DPoP allowed, replays in Redis.
start_replica() {
  local name="$1" port="$2"
  shift 2
  env -u STEPUP_ISSUER -u STEPUP_JWKS_URI -u STEPUP_RESOURCE -u STEPUP_TRANSFER_ACR -u STEPUP_ACCEPT_TYP \
    -u STEPUP_CLIENT_CLAIM -u STEPUP_OMIT_CLAIMS -u STEPUP_REQUIRED_SCOPE -u DEV_PROVIDER_KEY_FILE \
    BANK_ADDR="127.0.0.1:$port" BANK_PUBLIC_URL="$A" STEPUP_DPOP=allowed STEPUP_REPLAY_REDIS="$REDIS_URL" \
    NO_COLOR=1 RUST_LOG="${RUST_LOG:-info}" "$@" "$BIN" >"$LOG_DIR/$name.log" 2>&1 &
}
replica_up() {
  # replica_up NAME URL PID
  if ! wait_http "$2/healthz" 60 "$3"; then
    echo "$1 did not answer $2/healthz within 60 s (or exited); its log:" >&2
    cat "$LOG_DIR/$1.log" >&2 || true
    return 1
  fi
}

say "replica A at $A (embedded provider at $A/idp)"
start_replica replica-a "$A_PORT"
A_PID=$!
replica_up replica-a "$A" "$A_PID" || exit 1
say "replica B at $B (STEPUP_ISSUER=$A/idp)"
start_replica replica-b "$B_PORT" STEPUP_ISSUER="$A/idp"
B_PID=$!
replica_up replica-b "$B" "$B_PID" || exit 1

# phase TEST: one `replicas::TEST` of the bank demo's e2e binary against the running replicas.
phase() {
  (cd "$ROOT" && REPLICA_A="$A" REPLICA_B="$B" \
    cargo test -p bank-demo --test e2e -- --ignored --exact "replicas::$1")
}
both_alive() {
  local ok=0
  kill -0 "$A_PID" 2>/dev/null || { echo "replica A exited" >&2; ok=1; }
  kill -0 "$B_PID" 2>/dev/null || { echo "replica B exited" >&2; ok=1; }
  return "$ok"
}

check "replay: a proof spent on replica A is refused by replica B" phase replay

say "stopping redis-server"
stop_redis
check "Redis down: 503 with Retry-After from both replicas" phase redis_down
check "Redis down: both replicas still running" both_alive

say "restarting redis-server on the same port"
start_redis
check "Redis back: 200 again from both replicas, no restart" phase redis_up
check "Redis back: both replicas still running" both_alive

no_panic() {
  if grep -n -i 'panicked' "$LOG_DIR/replica-a.log" "$LOG_DIR/replica-b.log"; then
    echo "a replica panicked (above)" >&2
    return 1
  fi
}
logged_503() {
  # The fail-closed answer is logged with the store's failure: what failed, and where.
  local log ok=0
  for log in replica-a replica-b; do
    if ! grep -E '503' "$LOG_DIR/$log.log" | grep -E 'replay store' \
      | grep -qE "(unavailable|did not answer).*(redis|127\.0\.0\.1:$REDIS_PORT)"; then
      echo "$log.log has no line logging the 503 with the Redis failure; its last lines:" >&2
      tail -n 20 "$LOG_DIR/$log.log" >&2 || true
      ok=1
    fi
  done
  return "$ok"
}
no_token_logged() {
  # Tokens and proofs are JWTs (`eyJ…`): none may appear in a log.
  if grep -n 'eyJ' "$LOG_DIR/replica-a.log" "$LOG_DIR/replica-b.log"; then
    echo "a token or proof was logged (above)" >&2
    return 1
  fi
}
check "replica logs: no panic" no_panic
check "replica logs: the 503 names the Redis failure" logged_503
check "replica logs: no token or proof" no_token_logged

stop_pid "$A_PID"
A_PID=""
stop_pid "$B_PID"
B_PID=""

# --- 3. latency ------------------------------------------------------------------------------
bench() {
  (cd "$ROOT" && STEPUP_BENCH_REDIS="$REDIS_URL" \
    cargo bench -p stepup-tower --features redis --bench replay_redis) | tee "$LOG_DIR/bench.out"
  grep -qE '^\| sequential \| 20000 \|' "$LOG_DIR/bench.out"
}
if [ "${REPLICAS_BENCH:-1}" != "0" ]; then
  check "Redis insert latency (benches/replay_redis.rs)" bench
fi

echo
echo "logs: ${LOG_DIR#"$ROOT"/}/"
echo "replicas: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
