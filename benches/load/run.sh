#!/usr/bin/env bash
# HTTP load benchmark: the bank demo (stepup-tower) against /healthz, a
# repeated token and 10,000 distinct tokens at 1/16/64/256 connections, the same workloads
# against a twin server built on the crates.io `jwt-authorizer` crate, and a JWKS check (valid
# traffic with and without a storm of unknown-`kid` tokens, against a demo that fetches its keys
# by discovery). Writes benches/load/RESULTS.md and prints it.
#
# Usage (from any directory):   benches/load/run.sh
# Knobs (environment), defaults in brackets:
#   DURATION [8]             seconds per measured run
#   REPS [3]                 repetitions of every run (interleaved); the report takes medians
#   CONNS ["1 16 64 256"]    connection counts
#   WARMUP [2]               seconds of unrecorded warm-up per server instance
#   CACHE_SIZES ["0 100000"] STEPUP_TOKEN_CACHE values of the demo runs
#   DISTINCT [10000]         distinct tokens of workload (c)
#   WRK_THREADS [2]          wrk threads (1 for a single connection)
#   STORM_REQUESTS [5000]    unknown-kid requests of the JWKS storm
#   STORM_CONNS [16]         connections of the storm client
#   STORM_DELAY [2]          seconds into the valid run when the storm starts
#   JWKS_TOKEN_CACHE [0]     STEPUP_TOKEN_CACHE of the JWKS-check demo
#   JWKS_RUST_LOG [stepup_tower=debug]  RUST_LOG of the JWKS-check demo
#   QUIET_MAX [25]           before each run, wait until the machine's other CPU use is below
#                            this (% of one core, sampled over 1 s) ...
#   QUIET_WAIT [60]          ... for at most this many seconds (then run anyway, flagged),
#   QUIET_BUDGET [240]       ... and at most this many seconds over the whole script
#   OTHER_MAX [15]           flag a run (⚠) when other processes used more than this % of a core
#   SKIP_BUILD [0]           1: use the binaries already built
#   OUT [benches/load/RESULTS.md]
#   KEEP_WORK [0]            1: keep the temporary directory (keys, tokens, server logs)
# Needs: cargo, openssl, curl, wrk (installed with apt-get when missing and running as root).
# Only loopback addresses are used; every server is started here and stopped on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../tests/lib.sh
. "$ROOT/tests/lib.sh"

DURATION=${DURATION:-8}
REPS=${REPS:-3}
CONNS=${CONNS:-"1 16 64 256"}
WARMUP=${WARMUP:-2}
CACHE_SIZES=${CACHE_SIZES:-"0 100000"}
DISTINCT=${DISTINCT:-10000}
WRK_THREADS=${WRK_THREADS:-2}
STORM_REQUESTS=${STORM_REQUESTS:-5000}
STORM_CONNS=${STORM_CONNS:-16}
STORM_DELAY=${STORM_DELAY:-2}
JWKS_TOKEN_CACHE=${JWKS_TOKEN_CACHE:-0}
JWKS_RUST_LOG=${JWKS_RUST_LOG:-stepup_tower=debug}
QUIET_MAX=${QUIET_MAX:-25}
QUIET_WAIT=${QUIET_WAIT:-60}
QUIET_BUDGET=${QUIET_BUDGET:-240}
OTHER_MAX=${OTHER_MAX:-15}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-$HERE/RESULTS.md}
KEEP_WORK=${KEEP_WORK:-0}

DEMO_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/bank-demo
TWIN_TARGET=$HERE/twin/target
TWIN_BIN=$TWIN_TARGET/release/twin
MINT_BIN=$TWIN_TARGET/release/mint
LUA=$HERE/wrk.lua
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[load %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Tools

command -v cargo >/dev/null || die "cargo not found"
command -v openssl >/dev/null || die "openssl not found"
command -v curl >/dev/null || die "curl not found"
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "wrk not found: apt-get install -y wrk"
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } \
            || die "could not install wrk"
    else
        die "wrk not found (Debian: apt-get install -y wrk)"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Builds

BUILD_DEMO_CMD="cargo build --release -p bank-demo"
BUILD_TWIN_CMD="cargo build --release --locked --manifest-path benches/load/twin/Cargo.toml --target-dir benches/load/twin/target"
if [ "$SKIP_BUILD" != 1 ]; then
    log "building the demo: $BUILD_DEMO_CMD"
    (cd "$ROOT" && cargo build --release -p bank-demo)
    log "building the twin: $BUILD_TWIN_CMD"
    (cd "$ROOT" && cargo build --release --locked --manifest-path "$HERE/twin/Cargo.toml" --target-dir "$TWIN_TARGET")
fi
for b in "$DEMO_BIN" "$TWIN_BIN" "$MINT_BIN"; do [ -x "$b" ] || die "missing binary $b"; done

# ---------------------------------------------------------------------------------------------
# Temporary directory, processes, cleanup

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stepup-load.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ "$KEEP_WORK" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_tracked PID: stops it (tests/lib.sh) and forgets it.
stop_tracked() {
    local p=$1 q=() x
    stop_pid "$p"
    for x in "${PIDS[@]}"; do [ "$x" = "$p" ] || q+=("$x"); done
    PIDS=("${q[@]}")
}

# wait_for FILE PATTERN PID: until FILE has a line matching PATTERN (30 s).
wait_for() {
    wait_log "$1" "$2" 30 "$3" && return 0
    cat "$1" >&2 || true
    die "process $3 exited or timed out before printing '$2'"
}

# start_demo NAME [VAR=VALUE...]: sets DEMO_PID, DEMO_URL (where it listens), DEMO_ISSUER.
# BANK_ADDR=127.0.0.1:0 lets the kernel pick a free port; the demo prints the address it got.
start_demo() {
    local name=$1
    shift
    env NO_COLOR=1 RUST_LOG="${RUST_LOG_DEMO:-info}" BANK_ADDR=127.0.0.1:0 DEV_PROVIDER_KEY_FILE="$WORK/key.pem" "$@" \
        "$DEMO_BIN" >"$WORK/$name.log" 2>&1 &
    DEMO_PID=$!
    PIDS+=("$DEMO_PID")
    wait_for "$WORK/$name.log" "stepup-tower demo bank: " "$DEMO_PID"
    DEMO_URL=$(sed -n 's|.*stepup-tower demo bank: \(http://[^ ]*\)/$|\1|p' "$WORK/$name.log" | head -1)
    DEMO_ISSUER=$(awk '$1 == "issuer:" { print $2; exit }' "$WORK/$name.log")
    [ -n "$DEMO_URL" ] && [ -n "$DEMO_ISSUER" ] || die "cannot read the address of $name from its log"
    log "$name: pid $DEMO_PID at $DEMO_URL, issuer $DEMO_ISSUER"
}

# mint TAG ISSUER: $WORK/TAG.one (1 token), $WORK/TAG.distinct ($DISTINCT tokens).
mint() {
    "$MINT_BIN" tokens --key "$WORK/key.pem" --kid "$KID" --iss "$2" --count 1 --sub-prefix bench- >"$WORK/$1.one"
    "$MINT_BIN" tokens --key "$WORK/key.pem" --kid "$KID" --iss "$2" --count "$DISTINCT" --sub-prefix user- >"$WORK/$1.distinct"
    [ "$(wc -l <"$WORK/$1.distinct")" -eq "$DISTINCT" ] || die "minting failed"
}

# expect_status CODE URL [TOKEN]: prints the body.
expect_status() {
    local code body
    body=$(curl -sS -o - -w '\n%{http_code}' ${3:+-H "Authorization: Bearer $3"} "$2")
    code=${body##*$'\n'}
    body=${body%$'\n'*}
    [ "$code" = "$1" ] || die "GET $2 answered $code, expected $1: $body"
    printf '%s' "$body"
}

cpu_ticks() { # utime + stime of PID, clock ticks
    local line rest
    read -r line <"/proc/$1/stat"
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${12} + ${13}))
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# Busy clock ticks of the whole machine (all CPUs), and of this shell's reaped children (wrk).
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
children_ticks() {
    local line rest
    read -r line <"/proc/$$/stat"
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${14} + ${15}))
}
pct() { awk -v k="$1" -v hz="$CLK_TCK" -v ns="$2" 'BEGIN { printf "%.0f", k / hz / (ns / 1e9) * 100 }'; }
# other_pct MACHINE SERVER CLIENT NS: the rest, clamped at 0 (tick accounting differs slightly).
other_pct() { awk -v k=$(($1 - $2 - $3)) -v hz="$CLK_TCK" -v ns="$4" 'BEGIN { v = k / hz / (ns / 1e9) * 100; printf "%.0f", v < 0 ? 0 : v }'; }
# wait_quiet: until the machine's CPU use (our idle servers included) is below QUIET_MAX.
QUIET_WAITED=0
wait_quiet() {
    local start m0 m1 t0 t1 busy waited=0 limit=$QUIET_WAIT
    [ $((QUIET_BUDGET - QUIET_WAITED)) -ge "$limit" ] || limit=$((QUIET_BUDGET - QUIET_WAITED))
    start=$(date +%s)
    while :; do
        m0=$(machine_ticks) t0=$(date +%s%N)
        sleep 1
        m1=$(machine_ticks) t1=$(date +%s%N)
        busy=$(pct $((m1 - m0)) $((t1 - t0)))
        [ "$busy" -le "$QUIET_MAX" ] && break
        if [ $(($(date +%s) - start)) -ge "$limit" ]; then
            log "WARNING: the machine is still busy ($busy% of a core) after $(($(date +%s) - start)) s: running anyway"
            break
        fi
        [ "$waited" = 1 ] || log "machine busy ($busy% of a core used by other processes): waiting"
        waited=1
    done
    [ "$waited" = 0 ] || QUIET_WAITED=$((QUIET_WAITED + $(date +%s) - start))
}

# wrk_run CONNS SECONDS URL PATH TOKEN_MODE [ARG] -> prints the WRK_RESULT line.
# TOKEN_MODE: none | one TOKEN | file PATH
wrk_run() {
    local c=$1 d=$2 url=$3 path=$4 mode=$5 arg=${6:-} t=$WRK_THREADS out
    [ "$c" -lt "$t" ] && t=$c
    local envs=(WRK_PATH="$path" WRK_TOKEN= WRK_TOKENS_FILE= WRK_STOP_AFTER=0)
    case $mode in
        one) envs+=(WRK_TOKEN="$arg") ;;
        file) envs+=(WRK_TOKENS_FILE="$arg") ;;
    esac
    out=$(env "${envs[@]}" wrk -t"$t" -c"$c" -d"${d}s" -s "$LUA" "$url") || die "wrk failed: $out"
    grep '^WRK_RESULT' <<<"$out" || die "no WRK_RESULT from wrk: $out"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

ROWS=$WORK/rows.tsv
: >"$ROWS"

# measure SERVER CACHE WORKLOAD PID URL PATH MODE ARG CONNS REP: one run, one row.
measure() {
    local server=$1 cache=$2 workload=$3 pid=$4 url=$5 path=$6 mode=$7 arg=${8:-} c=$9 rep=${10}
    local t0 t1 k0 k1 m0 m1 w0 w1 res cpu client other hwm rss errs
    wait_quiet
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true # reset VmHWM to the current RSS
    k0=$(cpu_ticks "$pid") m0=$(machine_ticks) w0=$(children_ticks)
    t0=$(date +%s%N)
    res=$(wrk_run "$c" "$DURATION" "$url" "$path" "$mode" "$arg")
    t1=$(date +%s%N)
    k1=$(cpu_ticks "$pid") m1=$(machine_ticks) w1=$(children_ticks)
    client=$(pct $((w1 - w0)) $((t1 - t0)))
    other=$(other_pct $((m1 - m0)) $((k1 - k0)) $((w1 - w0)) $((t1 - t0)))
    hwm=$(status_kb "$pid" VmHWM)
    rss=$(status_kb "$pid" VmRSS)
    cpu=$(awk -v k=$((k1 - k0)) -v hz="$CLK_TCK" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", k / hz / (ns / 1e9) * 100 }')
    errs=$(($(field status_err "$res") + $(field connect_err "$res") + $(field read_err "$res") + $(field write_err "$res") + $(field timeout_err "$res")))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$cache" "$workload" "$c" \
        "$(field rps "$res")" "$(field p50_us "$res")" "$(field p99_us "$res")" "$(field max_us "$res")" \
        "$cpu" "$hwm" "$rss" "$errs" "$(field requests "$res")" "$client" "$other" "$rep" >>"$ROWS"
    log "$server cache=$cache $workload c=$c #$rep: $(field rps "$res") req/s, p50 $(field p50_us "$res") µs, p99 $(field p99_us "$res") µs, cpu $cpu% (client $client%, other $other%), hwm ${hwm} kB, errors $errs"
    [ "$other" -le "$OTHER_MAX" ] || log "WARNING: other processes used $other% of a core during that run"
    [ "$errs" = 0 ] || log "WARNING: $errs errors/non-2xx in that run"
}

warm_up() { # URL TOKEN
    [ "$WARMUP" -gt 0 ] || return 0
    wrk_run 16 "$WARMUP" "$1" /api/balance one "$2" >/dev/null
    wrk_run 16 "$WARMUP" "$1" /healthz none >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Key, provider demo, tokens

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/key.pem" 2>/dev/null
START_TS=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
T_START=$(date +%s)


FIRST_CACHE=${CACHE_SIZES%% *}
start_demo demo-cache$FIRST_CACHE STEPUP_TOKEN_CACHE="$FIRST_CACHE"
P_PID=$DEMO_PID P_URL=$DEMO_URL P_ISSUER=$DEMO_ISSUER
curl -fsS "$P_URL/idp/jwks" -o "$WORK/jwks.json"
KID=$("$MINT_BIN" kid "$WORK/jwks.json")
log "JWKS kid (RFC 7638 thumbprint): $KID"
mint p "$P_ISSUER"
ONE_TOKEN=$(cat "$WORK/p.one")
"$MINT_BIN" tokens --key "$WORK/key.pem" --kid x --iss "$P_ISSUER" --count 1000 --sub-prefix storm- --unknown-kid >"$WORK/unknown"

DEMO_BODY=$(expect_status 200 "$P_URL/api/balance" "$ONE_TOKEN")
log "demo /api/balance: $DEMO_BODY"
expect_status 200 "$P_URL/api/balance" "$(head -1 "$WORK/p.distinct")" >/dev/null
expect_status 401 "$P_URL/api/balance" "$(head -1 "$WORK/unknown")" >/dev/null
expect_status 200 "$P_URL/healthz" >/dev/null

# ---------------------------------------------------------------------------------------------
# Servers: one demo per cache size and the twin, all started before any run; idle while another
# is measured. Runs are interleaved (for each connection count and repetition, every server and
# workload once), so slow drifts of a shared machine hit all of them alike; the report takes
# each cell's median over the REPS repetitions.

SERVERS=() # "server|cache|pid|url|tokentag"
for cache in $CACHE_SIZES; do
    if [ "$cache" = "$FIRST_CACHE" ]; then
        pid=$P_PID url=$P_URL tag=p
    else
        start_demo "demo-cache$cache" STEPUP_TOKEN_CACHE="$cache"
        pid=$DEMO_PID url=$DEMO_URL tag=d$cache
        mint "$tag" "$DEMO_ISSUER"
        expect_status 200 "$url/api/balance" "$(cat "$WORK/$tag.one")" >/dev/null
    fi
    warm_up "$url" "$(cat "$WORK/$tag.one")"
    log "demo STEPUP_TOKEN_CACHE=$cache: RSS after warm-up $(status_kb "$pid" VmRSS) kB"
    SERVERS+=("demo|$cache|$pid|$url|$tag")
done

# The twin: keys from the provider demo's JWKS, the provider demo's tokens.
env TWIN_JWKS_URL="$P_URL/idp/jwks" TWIN_ISSUER="$P_ISSUER" TWIN_AUDIENCE=bank-api \
    "$TWIN_BIN" 127.0.0.1:0 >"$WORK/twin.log" 2>&1 &
TWIN_PID=$!
PIDS+=("$TWIN_PID")
wait_for "$WORK/twin.log" "twin listening on " "$TWIN_PID"
TWIN_URL=$(sed -n 's|^twin listening on \(http://.*\)$|\1|p' "$WORK/twin.log")
log "twin: pid $TWIN_PID at $TWIN_URL"
TWIN_BODY=$(expect_status 200 "$TWIN_URL/api/balance" "$ONE_TOKEN")
log "twin /api/balance: $TWIN_BODY"
[ "$TWIN_BODY" = "$DEMO_BODY" ] || log "WARNING: the twin's body differs from the demo's"
expect_status 401 "$TWIN_URL/api/balance" "$(head -1 "$WORK/unknown")" >/dev/null
expect_status 401 "$TWIN_URL/api/balance" >/dev/null
warm_up "$TWIN_URL" "$ONE_TOKEN"
SERVERS+=("twin|-|$TWIN_PID|$TWIN_URL|p")

for c in $CONNS; do
    for ((rep = 1; rep <= REPS; rep++)); do
        log "connections $c, repetition $rep of $REPS"
        for entry in "${SERVERS[@]}"; do
            IFS='|' read -r server cache pid url tag <<<"$entry"
            # /healthz once per server (it does not touch the layer): on the first demo only.
            if [ "$server" = twin ] || [ "$cache" = "$FIRST_CACHE" ]; then
                measure "$server" - healthz "$pid" "$url" /healthz none "" "$c" "$rep"
            fi
            measure "$server" "$cache" repeated "$pid" "$url" /api/balance one "$(cat "$WORK/$tag.one")" "$c" "$rep"
            measure "$server" "$cache" distinct "$pid" "$url" /api/balance file "$WORK/$tag.distinct" "$c" "$rep"
        done
    done
done
for entry in "${SERVERS[@]}"; do
    IFS='|' read -r server cache pid url tag <<<"$entry"
    [ "$pid" = "$P_PID" ] || stop_tracked "$pid"
done

# ---------------------------------------------------------------------------------------------
# JWKS under load: a second demo with an external issuer (the provider demo), keys by discovery.

RUST_LOG_DEMO=$JWKS_RUST_LOG start_demo demo-remote STEPUP_ISSUER="$P_ISSUER" STEPUP_TOKEN_CACHE="$JWKS_TOKEN_CACHE"
R_PID=$DEMO_PID R_URL=$DEMO_URL R_LOG=$WORK/demo-remote.log
[ "$DEMO_ISSUER" = "$P_ISSUER" ] || die "the remote demo's issuer is $DEMO_ISSUER, expected $P_ISSUER"
expect_status 200 "$R_URL/api/balance" "$ONE_TOKEN" >/dev/null
# (No unknown-kid probe here: its forced refetch would start the cooldown before the storm.)
sleep 1
count_log() { grep -cE -- "$1" "$R_LOG" || true; }
J_START_FETCHES=$(count_log 'JWKS fetched|JWKS fetch failed') J_START_LINES=$(count_log 'JWKS fetch')
warm_up "$R_URL" "$ONE_TOKEN"

# jwks_phase NAME STORM: valid traffic (b) at 64 connections for DURATION s; STORM is none,
# burst (STORM_REQUESTS requests, as fast as they go) or sustained (no cap, from STORM_DELAY s
# to STORM_DELAY s before the end). Appends a line to $WORK/jwks.tsv.
JWKS_ROWS=$WORK/jwks.tsv
: >"$JWKS_ROWS"
jwks_phase() {
    local name=$1 storm=$2 k0 k1 valid storm_res="" valid_pid d cap
    local f0 l0 fo0 s0 r0 f1 l1 fo1 s1 r1 t0 t1 m0 m1 w0 w1 other
    f0=$(count_log 'JWKS fetched|JWKS fetch failed') l0=$(count_log 'JWKS fetch')
    fo0=$(count_log 'unknown kid: refetching the JWKS') s0=$(count_log 'suppressed by the cooldown')
    r0=$(count_log 'request refused')
    wait_quiet
    k0=$(cpu_ticks "$R_PID") t0=$(date +%s%N) m0=$(machine_ticks) w0=$(children_ticks)
    wrk_run 64 "$DURATION" "$R_URL" /api/balance one "$ONE_TOKEN" >"$WORK/jwks-valid.out" &
    valid_pid=$!
    PIDS+=("$valid_pid")
    if [ "$storm" != none ]; then
        sleep "$STORM_DELAY"
        if [ "$storm" = burst ]; then
            # wrk sleeps for its whole -d even when its threads stopped early: keep it inside the run.
            d=$((DURATION - STORM_DELAY)) cap=$STORM_REQUESTS
        else
            d=$((DURATION - 2 * STORM_DELAY)) cap=0
        fi
        [ "$d" -ge 1 ] || d=1
        storm_res=$(env WRK_PATH=/api/balance WRK_TOKEN= WRK_TOKENS_FILE="$WORK/unknown" WRK_STOP_AFTER="$cap" \
            wrk -t1 -c"$STORM_CONNS" -d"${d}s" -s "$LUA" "$R_URL" | grep '^WRK_RESULT') || die "storm client failed"
    fi
    wait "$valid_pid" || die "valid client failed"
    stop_tracked "$valid_pid"
    k1=$(cpu_ticks "$R_PID") t1=$(date +%s%N) m1=$(machine_ticks) w1=$(children_ticks)
    valid=$(cat "$WORK/jwks-valid.out")
    f1=$(count_log 'JWKS fetched|JWKS fetch failed') l1=$(count_log 'JWKS fetch')
    fo1=$(count_log 'unknown kid: refetching the JWKS') s1=$(count_log 'suppressed by the cooldown')
    r1=$(count_log 'request refused')
    # How long the storm lasted in the server: first to last "request refused" line of this run
    # (valid traffic is never refused, so every such line is a storm request).
    local span
    span=$({ grep 'request refused' "$R_LOG" || true; } | tail -n +$((r0 + 1)) | awk '
        { split($1, a, "T"); split(a[2], t, ":"); sub(/Z$/, "", t[3]); s = t[1] * 3600 + t[2] * 60 + t[3]
          if (NR == 1) first = s; last = s }
        END { if (NR > 1) { d = last - first; if (d < 0) d += 86400; printf "%.0f ms", d * 1000 } else print "—" }')
    local cpu
    cpu=$(pct $((k1 - k0)) $((t1 - t0)))
    other=$(other_pct $((m1 - m0)) $((k1 - k0)) $((w1 - w0)) $((t1 - t0)))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$valid" "${storm_res:-—}" "$cpu" \
        $((f1 - f0)) $((l1 - l0)) $((fo1 - fo0)) $((s1 - s0)) $((r1 - r0)) "$span" "$other" >>"$JWKS_ROWS"
    [ "$other" -le "$OTHER_MAX" ] || log "WARNING: other processes used $other% of a core during that run"
    log "JWKS check, $name: valid $valid"
    [ -z "$storm_res" ] || log "JWKS check, $name: storm $storm_res"
    log "JWKS check, $name: fetches $((f1 - f0)), forced $((fo1 - fo0)), suppressed $((s1 - s0)), refused $((r1 - r0)) over $span"
}
jwks_phase "alone" none
jwks_phase "with a burst storm" burst
jwks_phase "with a sustained storm" sustained
J_HWM=$(status_kb "$R_PID" VmHWM)
R_LOG_LINES=$(wc -l <"$R_LOG")
stop_tracked "$R_PID"

T_END=$(date +%s)

# ---------------------------------------------------------------------------------------------
# Report

lat() { awk -v u="$1" 'BEGIN { if (u == "") print "—"; else if (u < 1000) printf "%d µs", u; else printf "%.2f ms", u / 1000 }'; }
kib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null | head -1)" ]; then GIT_REV="$GIT_REV (with uncommitted changes)"; fi

# One row per cell: the median run by req/s (REPS runs), plus a 17th field "min–max" req/s.
MED=$WORK/median.tsv
sort -t$'\t' -k1,1 -k2,2 -k3,3 -k4,4n -k5,5g "$ROWS" | awk -F'\t' -v OFS='\t' '
    function flush() { if (n) { m = int((n + 1) / 2); print row[m], sprintf("%.0f–%.0f", lo, hi) } n = 0 }
    { k = $1 "|" $2 "|" $3 "|" $4; if (k != prev) { flush(); prev = k; lo = $5 }
      row[++n] = $0; hi = $5 }
    END { flush() }' >"$MED"

ratio_table() {
    awk -F'\t' -v conns="$CONNS" -v caches="$CACHE_SIZES" '
        { rps[$1 "|" $2 "|" $3 "|" $4] = $5 }
        function r(a, b) { return (a == "" || b == "" || b == 0) ? "—" : sprintf("%.2f", a / b) }
        function mark(v, target) { return v == "—" ? v : (v + 0 >= target ? "**" v "** ✓" : "**" v "** ✗") }
        END {
            nc = split(caches, cs, " "); nn = split(conns, cn, " ")
            h1 = "| connections |"; h2 = "|---|"
            for (i = 1; i <= nc; i++) { h1 = h1 " repeated ÷ healthz, demo cache " cs[i] " (≥ 0.85) |"; h2 = h2 "---|" }
            for (i = 1; i <= nc; i++) { h1 = h1 " demo ÷ twin, repeated, cache " cs[i] " (≥ 1.5) |"; h2 = h2 "---|" }
            for (i = 1; i <= nc; i++) { h1 = h1 " demo ÷ twin, distinct, cache " cs[i] " (≥ 1.5) |"; h2 = h2 "---|" }
            h1 = h1 " healthz demo ÷ twin |"; h2 = h2 "---|"
            print h1; print h2
            for (j = 1; j <= nn; j++) {
                c = cn[j]; line = "| " c " |"
                hz = rps["demo|-|healthz|" c]
                for (i = 1; i <= nc; i++) line = line " " mark(r(rps["demo|" cs[i] "|repeated|" c], hz), 0.85) " |"
                for (i = 1; i <= nc; i++) line = line " " mark(r(rps["demo|" cs[i] "|repeated|" c], rps["twin|-|repeated|" c]), 1.5) " |"
                for (i = 1; i <= nc; i++) line = line " " mark(r(rps["demo|" cs[i] "|distinct|" c], rps["twin|-|distinct|" c]), 1.5) " |"
                line = line " " r(hz, rps["twin|-|healthz|" c]) " |"
                print line
            }
        }' "$MED"
}

{
    echo "# HTTP load: bank demo (stepup-tower) vs a jwt-authorizer twin"
    echo
    echo "Generated by \`benches/load/run.sh\` — do not edit by hand; rerun the script."
    echo
    echo "- Date: $START_TS (run took $((T_END - T_START)) s, builds excluded)"
    echo "- Machine: $(nproc) CPUs (\`nproc\`), $CPU_MODEL (\`lscpu\`), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
    echo "- Toolchain: $(rustc --version 2>/dev/null), $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }')"
    echo "- Source: $GIT_REV; twin: jwt-authorizer $(sed -n '/^name = "jwt-authorizer"/{n;s/version = "\(.*\)"/\1/p}' "$HERE/twin/Cargo.lock"), axum $(sed -n '/^name = "axum"/{n;s/version = "\(.*\)"/\1/p}' "$HERE/twin/Cargo.lock")"
    echo "- Client and servers share the machine: wrk ($WRK_THREADS threads; 1 for 1 connection) and the server (tokio, one worker per CPU) compete for the same $(nproc) cores. Ratios matter more than absolute numbers."
    echo "- Every run was repeated $REPS times, interleaved (per connection count and repetition: every server and workload once); the tables show each cell's median run by req/s, with the spread of the $REPS runs."
    flagged=$(awk -F'\t' -v m="$OTHER_MAX" '$15 > m' "$MED" | wc -l)
    flagged=$((flagged + $(awk -F'\t' -v m="$OTHER_MAX" '$11 > m' "$JWKS_ROWS" | wc -l)))
    if [ "$flagged" -gt 0 ]; then
        echo "- ⚠ **$flagged run(s) shared the machine with other work** (other CPU > $OTHER_MAX% of a core, marked ⚠ below): their numbers are not comparable; rerun on a quiet machine."
    else
        echo "- Quiet machine: no run saw other processes use more than $OTHER_MAX% of a core (waited $QUIET_WAITED s in all for quiet before runs)."
    fi
    echo
    echo "## Commands"
    echo
    echo '```sh'
    echo "$BUILD_DEMO_CMD"
    echo "$BUILD_TWIN_CMD"
    echo "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \$TMP/key.pem"
    echo "# provider demo (its JWKS serves the twin and the JWKS check); the kernel picks a free port"
    echo "BANK_ADDR=127.0.0.1:0 DEV_PROVIDER_KEY_FILE=\$TMP/key.pem STEPUP_TOKEN_CACHE=<n> target/release/bank-demo"
    echo "benches/load/twin/target/release/mint kid jwks.json   # kid = RFC 7638 thumbprint from /idp/jwks"
    echo "benches/load/twin/target/release/mint tokens --key \$TMP/key.pem --kid \$KID --iss \$ISSUER --count 1 --sub-prefix bench-"
    echo "benches/load/twin/target/release/mint tokens --key \$TMP/key.pem --kid \$KID --iss \$ISSUER --count $DISTINCT --sub-prefix user-"
    echo "TWIN_JWKS_URL=\$DEMO/idp/jwks TWIN_ISSUER=\$DEMO/idp benches/load/twin/target/release/twin 127.0.0.1:0"
    echo "# each run (T = min($WRK_THREADS, C)), C in: $CONNS"
    echo "WRK_PATH=/healthz wrk -tT -cC -d${DURATION}s -s benches/load/wrk.lua \$SERVER"
    echo "WRK_PATH=/api/balance WRK_TOKEN=\$TOKEN wrk -tT -cC -d${DURATION}s -s benches/load/wrk.lua \$SERVER"
    echo "WRK_PATH=/api/balance WRK_TOKENS_FILE=distinct.txt wrk -tT -cC -d${DURATION}s -s benches/load/wrk.lua \$SERVER"
    echo "# JWKS check: a demo with an external issuer, keys by discovery"
    echo "RUST_LOG=$JWKS_RUST_LOG STEPUP_ISSUER=\$PROVIDER/idp STEPUP_TOKEN_CACHE=$JWKS_TOKEN_CACHE BANK_ADDR=127.0.0.1:0 target/release/bank-demo"
    echo "WRK_PATH=/api/balance WRK_TOKEN=\$TOKEN wrk -t$WRK_THREADS -c64 -d${DURATION}s -s benches/load/wrk.lua \$REMOTE   # alone, then twice more with one of:"
    echo "sleep $STORM_DELAY; WRK_PATH=/api/balance WRK_TOKENS_FILE=unknown-kids.txt WRK_STOP_AFTER=$STORM_REQUESTS wrk -t1 -c$STORM_CONNS -d$((DURATION - STORM_DELAY))s -s benches/load/wrk.lua \$REMOTE   # burst"
    echo "sleep $STORM_DELAY; WRK_PATH=/api/balance WRK_TOKENS_FILE=unknown-kids.txt wrk -t1 -c$STORM_CONNS -d$((DURATION - 2 * STORM_DELAY))s -s benches/load/wrk.lua \$REMOTE   # sustained (third run)"
    echo '```'
    echo
    echo "## Runs ($DURATION s each, median of $REPS)"
    echo
    echo "\`repeated\`: one token on every request. \`distinct\`: requests rotate through $DISTINCT tokens with distinct \`sub\`/\`jti\`."
    echo "CPU is utime+stime over the run, in % of one core: of the server process, of wrk (client), and of everything else on the machine (other = all CPUs' busy time from /proc/stat minus both; ⚠ above $OTHER_MAX%: the run shared the machine with other work). Peak RSS is VmHWM, reset before each run (\`echo 5 > /proc/PID/clear_refs\`); RSS after is VmRSS at the end of the run. Errors count non-2xx answers and socket errors/timeouts."
    echo
    echo "| server | STEPUP_TOKEN_CACHE | workload | conns | req/s (median) | req/s, $REPS runs | p50 | p99 | max | server CPU | client CPU | other CPU | peak RSS | RSS after | requests | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    sort -t$'\t' -k1,1 -k2,2 -k3,3 -k4,4n "$MED" | while IFS=$'\t' read -r server cache workload c rps p50 p99 max cpu hwm rss errs reqs client other _rep spread; do
        if [ "$other" -le "$OTHER_MAX" ]; then other="$other%"; else other="$other% ⚠"; fi
        path=/api/balance
        [ "$workload" = healthz ] && path=/healthz
        printf '| %s | %s | %s `%s` | %s | %s | %s | %s | %s | %s | %s%% | %s%% | %s | %s | %s | %s | %s |\n' "$server" "$cache" "$workload" "$path" "$c" \
            "$(awk -v r="$rps" 'BEGIN { printf "%.0f", r }')" "$spread" "$(lat "$p50")" "$(lat "$p99")" "$(lat "$max")" "$cpu" "$client" "$other" "$(kib "$hwm")" "$(kib "$rss")" "$reqs" "$errs"
    done
    echo
    echo "## Ratios (throughput)"
    echo
    echo "Of medians. \`/healthz\` of the demo was measured on the STEPUP_TOKEN_CACHE=$FIRST_CACHE instance only (the route does not touch the layer)."
    echo
    ratio_table
    echo
    echo "## JWKS under load"
    echo
    echo "A second demo with \`STEPUP_ISSUER=$P_ISSUER\` (the provider demo): it finds the JWKS by discovery and caches it (RemoteJwks). Valid traffic: workload (b), 64 connections, $DURATION s. Storm: a second wrk client (1 thread, $STORM_CONNS connections) sending $STORM_REQUESTS requests whose tokens carry unknown \`kid\`s (1,000 distinct ones), started $STORM_DELAY s into the valid run; then a sustained storm. RUST_LOG=$JWKS_RUST_LOG, STEPUP_TOKEN_CACHE=$JWKS_TOKEN_CACHE."
    echo
    echo "| valid traffic | req/s | p50 | p99 | max | errors | storm requests answered (all 401?) | requests refused by the demo, over | server CPU | other CPU | JWKS fetches | lines with \`JWKS fetch\` | forced refetches | suppressed by the cooldown |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    while IFS=$'\t' read -r name valid storm cpu df dl dfo ds dr span other; do
        if [ "$other" -le "$OTHER_MAX" ]; then other="$other%"; else other="$other% ⚠"; fi
        errs=$(($(field status_err "$valid") + $(field connect_err "$valid") + $(field read_err "$valid") + $(field write_err "$valid") + $(field timeout_err "$valid")))
        if [ "$storm" = "—" ]; then sa="—"; else
            sa="$(field requests "$storm") ($([ "$(field status_err "$storm")" = "$(field requests "$storm")" ] && echo yes || echo "no: $(field status_err "$storm") 4xx/5xx"))"
        fi
        printf '| %s | %.0f | %s | %s | %s | %s | %s | %s in %s | %s%% | %s | %s | %s | %s | %s |\n' "$name" "$(field rps "$valid")" \
            "$(lat "$(field p50_us "$valid")")" "$(lat "$(field p99_us "$valid")")" "$(lat "$(field max_us "$valid")")" "$errs" \
            "$sa" "$dr" "$span" "$cpu" "$other" "$df" "$dl" "$dfo" "$ds"
    done <"$JWKS_ROWS"
    echo
    echo "The burst stops after $STORM_REQUESTS answers (the demo refuses a few more: requests in flight when the client stopped); the sustained storm runs from $STORM_DELAY s after the start to $STORM_DELAY s before the end, with no cap, and shares the $(nproc) cores with the valid traffic and its client. A forced refetch (unknown \`kid\`) is allowed once per cooldown (30 s by default), so a storm that starts less than 30 s after the previous forced refetch causes none."
    case $JWKS_RUST_LOG in
        *debug* | *trace*) echo "With \`$JWKS_RUST_LOG\` the demo also logs one line per accepted request (\`token accepted\`), to a file here: every run of this table pays for it, so compare them with each other rather than with the (b) rows above." ;;
    esac
    echo "JWKS fetches at start-up (before the runs): $J_START_FETCHES (lines with \`JWKS fetch\`: $J_START_LINES; with \`debug\`, each fetch logs \`JWKS fetch started\` and then \`JWKS fetched\`). Peak RSS of this demo over its life: $(kib "$J_HWM"); its log: $R_LOG_LINES lines."
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

cat "$OUT"
echo
log "wrote $OUT"
