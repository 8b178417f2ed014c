#!/usr/bin/env bash
# CI of the npm package stepup-fetch (clients/stepup-fetch), runnable from any directory:
#
#   1. npm ci (the committed package-lock.json)
#   2. node --test: the unit tests (test/*.test.js), against HTTP servers on 127.0.0.1
#   3. tsc --noEmit: the JSDoc types of src/
#   4. npm pack: the tarball must hold exactly package.json, README.md, LICENSE, the ESM
#      sources (src/*.js) and their .d.ts (types/*.d.ts)
#   5. the tarball installed into a scratch folder: imported from Node by its name
#      (test/installed/check.mjs) and type-checked from TypeScript (test/installed/consumer.ts)
#   6. size: the core under 5 KB minified+gzip, and README.md stating the measured figure
#      (node scripts/size.mjs --check)
#
# Ends with one line `N passed, M failed` (every unit test and every check above); exits
# non-zero on any failure. Without node >= 20 and npm it fails: nothing is skipped.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
PASSED=0
FAILED=0
pass() { echo "PASS $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $*"; FAILED=$((FAILED + 1)); }
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}
say() { printf '\n==> %s\n' "$*"; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  fail "node and npm are needed (Node.js >= 20)"
  finish
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  fail "Node.js >= 20 is needed, found $(node --version)"
  finish
fi

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/stepup-fetch-ci.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

say "npm ci"
if npm ci --no-audit --no-fund --loglevel=error; then
  pass "npm ci"
else
  fail "npm ci"
  finish
fi

say "node --test test/*.test.js"
node --test --test-timeout=60000 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$SCRATCH/tap.txt" test/*.test.js
rc=$?
tests_passed="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$SCRATCH/tap.txt" | tail -n 1)"
tests_failed="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$SCRATCH/tap.txt" | tail -n 1)"
if [ -z "$tests_passed" ] || [ -z "$tests_failed" ]; then
  cat "$SCRATCH/tap.txt"
  fail "node --test gave no totals"
elif [ "$rc" -ne 0 ] && [ "$tests_failed" -eq 0 ]; then
  cat "$SCRATCH/tap.txt"
  fail "node --test exited with status $rc"
else
  [ "$tests_failed" -eq 0 ] || sed -n '/^not ok/,/^  \.\.\.$/p' "$SCRATCH/tap.txt"
  if [ "$tests_passed" -eq 0 ]; then fail "node --test ran no test"; fi
  PASSED=$((PASSED + tests_passed))
  FAILED=$((FAILED + tests_failed))
fi

say "tsc --noEmit"
if npx --no-install tsc --noEmit -p tsconfig.json; then pass "tsc --noEmit"; else fail "tsc --noEmit"; fi

say "npm pack"
rm -rf types
if TARBALL="$(npm pack --silent --pack-destination "$SCRATCH" 2>"$SCRATCH/pack.log" | tail -n 1)" && [ -f "$SCRATCH/$TARBALL" ]; then
  pass "npm pack ($TARBALL)"
  tar tzf "$SCRATCH/$TARBALL" | sort >"$SCRATCH/contents.txt"
  cat >"$SCRATCH/expected.txt" <<'LIST'
package/LICENSE
package/README.md
package/package.json
package/src/dpop.js
package/src/index.js
package/src/oidc-client-ts.js
package/src/oidc.js
package/types/dpop.d.ts
package/types/index.d.ts
package/types/oidc-client-ts.d.ts
package/types/oidc.d.ts
LIST
  if diff -u "$SCRATCH/expected.txt" "$SCRATCH/contents.txt"; then
    pass "the tarball holds the ESM sources, their .d.ts, README.md, LICENSE (and package.json), nothing else"
  else
    fail "the tarball's files differ from the list above"
  fi

  say "install the tarball into a scratch folder"
  mkdir -p "$SCRATCH/app"
  printf '{"name":"scratch-app","private":true,"type":"module"}\n' >"$SCRATCH/app/package.json"
  if (cd "$SCRATCH/app" && npm install --no-audit --no-fund --loglevel=error --no-package-lock "$SCRATCH/$TARBALL"); then
    pass "npm install of the tarball (zero runtime dependencies)"
    [ "$(ls "$SCRATCH/app/node_modules")" = stepup-fetch ] && pass "nothing but stepup-fetch was installed" || fail "the tarball brought dependencies: $(ls "$SCRATCH/app/node_modules")"
    cp test/installed/check.mjs test/installed/consumer.ts "$SCRATCH/app/"
    (cd "$SCRATCH/app" && node check.mjs) >"$SCRATCH/check.txt" 2>&1
    rc=$?
    cat "$SCRATCH/check.txt"
    PASSED=$((PASSED + $(grep -c '^PASS ' "$SCRATCH/check.txt")))
    FAILED=$((FAILED + $(grep -c '^FAIL ' "$SCRATCH/check.txt")))
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$SCRATCH/check.txt"; then fail "node check.mjs exited with status $rc"; fi
    # oidc-client-ts (and its jwt-decode), as the app would have them: for the consumer's
    # UserManager only.
    ln -s "$HERE/node_modules/oidc-client-ts" "$HERE/node_modules/jwt-decode" "$SCRATCH/app/node_modules/"
    cat >"$SCRATCH/app/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "target": "es2022", "module": "nodenext", "moduleResolution": "nodenext", "strict": true,
    "noEmit": true, "lib": ["es2022", "dom", "dom.iterable"], "types": [], "skipLibCheck": false
  },
  "files": ["consumer.ts"]
}
JSON
    if (cd "$SCRATCH/app" && "$HERE/node_modules/.bin/tsc" -p tsconfig.json); then
      pass "the installed .d.ts type-check a TypeScript consumer (with oidc-client-ts's UserManager)"
    else
      fail "the installed .d.ts do not type-check test/installed/consumer.ts"
    fi
  else
    fail "npm install of the tarball"
  fi
else
  cat "$SCRATCH/pack.log"
  fail "npm pack"
fi

say "size (node scripts/size.mjs --check)"
node scripts/size.mjs --check >"$SCRATCH/size.txt" 2>&1
cat "$SCRATCH/size.txt"
PASSED=$((PASSED + $(grep -c '^PASS ' "$SCRATCH/size.txt")))
FAILED=$((FAILED + $(grep -c '^FAIL ' "$SCRATCH/size.txt")))
grep -q '^PASS ' "$SCRATCH/size.txt" || fail "the size script ran no check"

finish
