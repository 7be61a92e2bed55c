#!/usr/bin/env bash
# Deploy: `make deploy CONFIG=my-gateway.yaml` (or `bash infra/scripts/deploy.sh --config FILE`).
#
# infra/deploy.py does the work: it checks AWS credentials and the region before anything else (one line and no
# question when they are missing), saves this checkout's stack name, region and template parameters in
# deploy.local.toml (asked once on a terminal), builds (infra/scripts/build.sh), and runs `sam deploy` with the
# committed samconfig.toml, which asks nothing. `--no-build` deploys the last build; `-- ARGS` go to `sam deploy`.
# SAM_CLI names another SAM CLI than the project's own .venv-sam/bin/sam. Never run by the tests against AWS.
set -euo pipefail

cd "$(dirname "$0")/../.."
[[ -x .venv/bin/python ]] || { echo "deploy: .venv is missing; run 'make venv' first" >&2; exit 1; }
exec .venv/bin/python -m infra.deploy "$@"
