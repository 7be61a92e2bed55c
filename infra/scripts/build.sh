#!/usr/bin/env bash
# Build the Lambda artifacts: `make build CONFIG=path/to/gateway.yaml` (default: examples/gateway.yaml).
#
# 1. validates the gateway config and ships it inside the build as deploy_config/gateway.yaml (the functions read
#    /var/task/deploy_config/gateway.yaml: no network call and no AWS SDK import at cold start to get it), with its
#    validated form deploy_config/gateway.yaml.validated.json (no validation at cold start);
# 2. lints template.yaml (which also installs aws-sam-cli into .venv-sam on first use);
# 3. runs `sam build` without a container (needs a python3.12 interpreter, the Lambda runtime's version);
# 4. compiles every module to .pyc for python3.12 with unchecked-hash invalidation: Lambda's filesystem is read-only,
#    so without shipped bytecode every cold start compiles all imports again (about 3x slower imports).
set -euo pipefail

cd "$(dirname "$0")/../.."
CONFIG="${1:-examples/gateway.yaml}"
DEPLOY_CONFIG_DIR=functions/deploy_config
BUILD_DIR=.aws-sam/build

say() { echo "==> build: $*"; }
die() { echo "build: error: $*" >&2; exit 1; }

[[ -x .venv/bin/python ]] || die ".venv is missing; run 'make venv' first"
[[ -f "$CONFIG" ]] || die "gateway config '$CONFIG' not found (usage: make build CONFIG=path/to/gateway.yaml)"

say "validating $CONFIG"
# --stage prod: a build is for a deployed stage (the template's dev, staging and prod refuse and warn alike), so a
# development switch the functions would refuse at cold start fails the build here (docs/deploy.md).
PYTHONPATH=functions .venv/bin/python -m gateway.config check "$CONFIG" --stage prod
if [[ "$CONFIG" == "examples/gateway.yaml" ]]; then
  echo "build: warning: examples/gateway.yaml is the local demo config (dev sign-in, upstream on 127.0.0.1);" \
    "write your own for a real deployment (docs/deploy.md)" >&2
fi

# sam build requires the runtime's interpreter on PATH. A pyenv shim named python3.12 may exist yet fail when 3.12
# is not a selected pyenv version, so test that it runs, and fall back to pyenv's own installations.
find_python312() {
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys' >/dev/null 2>&1; then
    dirname "$(python3.12 -c 'import sys; print(sys.executable)')"
    return 0
  fi
  local root candidate
  root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  for candidate in "$root"/versions/3.12*/bin/python3.12; do
    if [[ -x "$candidate" ]] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      dirname "$candidate"
      return 0
    fi
  done
  return 1
}
PY312_DIR="$(find_python312)" || die "sam build needs a python3.12 interpreter (the Lambda runtime's version) on PATH;
install one (e.g. 'pyenv install 3.12' or your OS package) and retry"
export PATH="$PY312_DIR:$PATH"
say "using $PY312_DIR/python3.12 ($(python3.12 -V))"

say "shipping $CONFIG as $DEPLOY_CONFIG_DIR/gateway.yaml, with its validated form beside it"
mkdir -p "$DEPLOY_CONFIG_DIR"
cp "$CONFIG" "$DEPLOY_CONFIG_DIR/gateway.yaml"
# gateway.yaml.validated.json: the functions rebuild the configuration from it instead of validating the YAML at
# every cold start (importing PyYAML and building the validators); they still validate the YAML if it differs.
PYTHONPATH=functions .venv/bin/python -m gateway.config compile "$DEPLOY_CONFIG_DIR/gateway.yaml"

bash infra/scripts/lint-template.sh

export SAM_CLI_TELEMETRY=0
say "sam build (no container)"
.venv-sam/bin/sam build --template-file template.yaml --build-dir "$BUILD_DIR" --cached --parallel

say "compiling .pyc for python3.12"
for artifact in "$BUILD_DIR"/*/; do
  # -q: errors only; some third-party packages ship files that are not meant to be imported (e.g. templates).
  python3.12 -m compileall -q -j 0 --invalidation-mode unchecked-hash "$artifact" >/dev/null \
    || echo "build: warning: some files in $artifact did not compile (left as source)" >&2
done

say "artifact sizes (unzipped; Lambda's limit is 250 MB)"
du -sh "$BUILD_DIR"/*/ | sed 's/^/    /'
say "done: deploy this build with 'bash infra/scripts/deploy.sh --no-build' (make deploy CONFIG=... builds again)"
