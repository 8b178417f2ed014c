# Helpers shared by the repository's shell scripts (tests/browser/run.sh, tests/interop/run.sh,
# benches/load/run.sh, examples/minimal/smoke.sh). Source it: `. "$ROOT/tests/lib.sh"`.
# Needs bash, curl and python3 (both on every machine this project runs on).

# stop_pid PID: SIGTERM, up to 5 s to exit, then SIGKILL; reaps it. No-op for an empty PID.
stop_pid() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL SECONDS PID: until URL answers 2xx. Fails (status 1) when PID exits first or
# the time runs out.
wait_http() {
  local url="$1" deadline=$((SECONDS + $2)) pid="$3"
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -fsS --max-time 1 -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# wait_log FILE PATTERN SECONDS PID: until FILE has a line matching PATTERN (grep -E). Fails
# (status 1) when PID exits first or the time runs out.
wait_log() {
  local file="$1" pattern="$2" deadline=$((SECONDS + $3)) pid="$4"
  while [ "$SECONDS" -lt "$deadline" ]; do
    grep -qE -- "$pattern" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# target_dir: cargo's target directory for this workspace (honours CARGO_TARGET_DIR).
target_dir() {
  cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
