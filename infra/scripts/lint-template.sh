#!/usr/bin/env bash
# Lint template.yaml with cfn-lint (from .venv) and `sam validate --lint` (from its own .venv-sam).
#
# aws-sam-cli pins many packages (boto3, pydantic, jinja2, ...) that would fight the project's own, so it lives in a
# separate virtualenv, created here on first use; later runs only lint (a few seconds). Both tools work offline.
set -euo pipefail

cd "$(dirname "$0")/../.."
TEMPLATE="${1:-template.yaml}"
SAM_VENV=.venv-sam
SAM_STAMP="$SAM_VENV/.installed"
SAM_CLI_SPEC="${SAM_CLI_SPEC:-aws-sam-cli>=1.120}"

if [[ ! -x .venv/bin/cfn-lint ]]; then
  echo "lint-template: .venv/bin/cfn-lint is missing; run 'make venv' first" >&2
  exit 2
fi

# The interpreter for .venv-sam: any Python the CLI supports; python3.12 (the Lambda runtime) when present.
pick_python() {
  local candidate
  for candidate in python3.12 python3.13 python3.11 "$(pwd)/.venv/bin/python"; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [[ ! -f "$SAM_STAMP" ]]; then
  python_bin="$(pick_python)" || { echo "lint-template: no Python 3.11+ found to create $SAM_VENV" >&2; exit 2; }
  echo "==> lint-template: creating $SAM_VENV with $python_bin and installing $SAM_CLI_SPEC (first run only)"
  rm -rf "$SAM_VENV"
  "$python_bin" -m venv "$SAM_VENV"
  "$SAM_VENV/bin/python" -m pip install --quiet --upgrade pip
  "$SAM_VENV/bin/python" -m pip install --quiet "$SAM_CLI_SPEC"
  touch "$SAM_STAMP"
fi

# sam validate reads credentials and a region even when it only lints offline: give it dummy ones unless set.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0

lint() {
  echo "==> cfn-lint $1"
  .venv/bin/cfn-lint "$1"
  echo "==> sam validate --lint $1"
  "$SAM_VENV/bin/sam" validate --lint --region us-east-1 --template-file "$1"
}

lint "$TEMPLATE"

# The streaming deployment (ProxyResponseMode=streaming, with the optional WAF) as its own template: the same file
# with those parameters' defaults switched, so both modes' resources and conditions are checked as deployed.
STREAMING_TEMPLATE="$(mktemp --suffix=.yaml "$(dirname "$TEMPLATE")/.template-streaming-XXXXXX")"
trap 'rm -f "$STREAMING_TEMPLATE"' EXIT
.venv/bin/python - "$TEMPLATE" "$STREAMING_TEMPLATE" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for name, old, new in (("ProxyResponseMode", "buffered", "streaming"), ("WafRequestsPerFiveMinutes", "0", "1000")):
    pattern = rf"(\n  {name}:\n(?:    .*\n)*?    Default: ){re.escape(old)}\n"
    text, count = re.subn(pattern, rf"\g<1>{new}\n", text)
    if count != 1:
        sys.exit(f"lint-template: parameter {name} with default {old} not found")
open(sys.argv[2], "w", encoding="utf-8").write(text)
PY
lint "$STREAMING_TEMPLATE"

echo "==> lint-template: $TEMPLATE is clean in both deployment modes"
