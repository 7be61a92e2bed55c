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

step "pytest"
$PY -m pytest -q "$@"

if [ "$#" -eq 0 ]; then
  # The unit and integration tiers again, executed an hour after they were collected (tests/support/clock_shift.py):
  # a test that took "now" at import, or that relies on the suite finishing within an expiry window, fails here.
  step "pytest, unit and integration, wall clock moved an hour after collection"
  GATEWAY_TEST_CLOCK_SHIFT_SECONDS=3600 $PY -m pytest -q -p no:cacheprovider tests/unit tests/integration
fi
