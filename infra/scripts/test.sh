#!/usr/bin/env bash
# `make test`: install what the tests need that pip does not (Debian chromium, npm fixtures), then lint, type-check
# and run every test. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python

step() { printf '\n==> %s\n' "$*"; }

step "system packages (chromium for the browser tests)"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian chromium (first run only)…"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing and this user cannot install it: run 'sudo apt-get install chromium'" >&2
    exit 1
  fi
fi
chromium --version

step "npm fixtures"
for dir in tests/fixtures/*/; do
  if [ -f "$dir/package.json" ] && [ ! -d "$dir/node_modules" ]; then
    echo "npm install in $dir"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  fi
done

step "ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

step "mypy (strict)"
.venv/bin/mypy

step "config schema is up to date"
$PY -m gateway.config schema | diff -u schema/gateway-config.schema.json - >/dev/null \
  || { echo "schema/gateway-config.schema.json is stale: run 'make schema'" >&2; exit 1; }

if [ "$#" -gt 0 ]; then
  step "pytest $*"
  $PY -m pytest -q "$@"
  exit
fi

# Every test, in two streams at once: the e2e tier (real servers, clients and a browser: mostly waiting on them) beside
# the unit and integration tiers, which then run a second time with the wall clock moved an hour after collection
# (tests/support/clock_shift.py: a test that took "now" at import, or that relies on the suite finishing within an
# expiry window, fails there). Each stream starts its own local stack on free ports and writes its own log; nothing
# they share is written by both (pytest's cache is off).
LOGS=test-artifacts
mkdir -p "$LOGS"
SETSID=$(command -v setsid || true)  # util-linux; without it a stream shares this script's process group
streams=()
cleanup() {  # each stream leads a process group of its own: stop it with every server its tests started
  local pid
  for pid in "${streams[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "pytest: e2e in the background (log: $LOGS/pytest-e2e.log), unit and integration meanwhile"
started=$SECONDS
$SETSID $PY -m pytest -q -p no:cacheprovider tests/e2e >"$LOGS/pytest-e2e.log" 2>&1 &
e2e_pid=$!
streams+=("$e2e_pid")
$SETSID bash -c '
  echo "== unit and integration"
  "$0" -m pytest -q -p no:cacheprovider tests/unit tests/integration || exit 1
  echo "== unit and integration, wall clock moved an hour after collection"
  GATEWAY_TEST_CLOCK_SHIFT_SECONDS=3600 "$0" -m pytest -q -p no:cacheprovider tests/unit tests/integration
' "$PY" >"$LOGS/pytest-unit-integration.log" 2>&1 &
tiers_pid=$!
streams+=("$tiers_pid")

status=0
wait "$tiers_pid" || status=1
step "unit and integration, twice: $([ $status = 0 ] && echo passed || echo FAILED) after $((SECONDS - started)) s"
cat "$LOGS/pytest-unit-integration.log"
e2e_status=0
wait "$e2e_pid" || e2e_status=1
step "e2e: $([ $e2e_status = 0 ] && echo passed || echo FAILED) after $((SECONDS - started)) s"
cat "$LOGS/pytest-e2e.log"
streams=()
if [ $status != 0 ] || [ $e2e_status != 0 ]; then
  echo "make test: FAILED (the logs above; also in $LOGS/)" >&2
  exit 1
fi
echo "make test: every check and test passed in $((SECONDS - started)) s of tests"
