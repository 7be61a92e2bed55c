#!/usr/bin/env bash
# Deploy the built stack, a thin wrapper over `sam deploy --guided`; `make deploy CONFIG=...` builds first.
#
# The guided prompts ask for the stack name (default mcp-gateway), the region and every template parameter, and save
# the answers to samconfig.toml (gitignored) as the defaults of the next run. Extra arguments go to `sam deploy`,
# e.g. `bash infra/scripts/deploy.sh --parameter-overrides Stage=dev`. Never run by the tests.
set -euo pipefail

cd "$(dirname "$0")/../.."
STACK_NAME="${STACK_NAME:-mcp-gateway}"

[[ -x .venv-sam/bin/sam ]] || { echo "deploy: .venv-sam is missing; run 'make build' first" >&2; exit 1; }
[[ -f .aws-sam/build/template.yaml ]] || { echo "deploy: no build found; run 'make build CONFIG=...' first" >&2; exit 1; }
if cmp -s functions/deploy_config/gateway.yaml examples/gateway.yaml; then
  echo "deploy: warning: the build ships examples/gateway.yaml, the local demo config; see docs/deploy.md" >&2
fi

export SAM_CLI_TELEMETRY=0
exec .venv-sam/bin/sam deploy --guided \
  --stack-name "$STACK_NAME" \
  --capabilities CAPABILITY_IAM \
  "$@"
