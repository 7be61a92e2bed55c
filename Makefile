# MCP gateway on AWS. Quickstart: `make dev` and `make test` (each bootstraps what it needs on first use).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv dev test test-fast lint typecheck invoke bench build deploy schema clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS=":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	@echo "==> creating $(VENV) with $(PYTHON) and installing the project (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create the virtualenv and install dependencies

dev: $(STAMP) ## run the gateway on http://127.0.0.1:9000 (CONFIG=my-gateway.yaml; MODE=streaming; RESET=1 starts clean)
	$(PY) -m infra.dev $(if $(CONFIG),--config "$(CONFIG)") $(if $(MODE),--mode "$(MODE)") $(if $(RESET),--reset)

test: $(STAMP) ## set everything up and run all checks and tests
	bash infra/scripts/test.sh

test-fast: $(STAMP) ## unit tests only, for a quick loop
	$(PY) -m pytest -q tests/unit

lint: $(STAMP) ## ruff and mypy strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

invoke: $(STAMP) ## run one function on one event: make invoke FN=metadata EVENT=events/metadata-prm.json (KEEP=1)
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<function> EVENT=events/<file>.json [KEEP=1]" >&2; exit 2; }
	$(PY) -m infra.invoke $(if $(KEEP),--keep) $(FN) $(EVENT)

bench: $(STAMP) ## benchmarks (docs/performance.md): WRITE_DOCS=1 rewrites its tables; ONLY=proxy; ARGS=--runs 3
	$(PY) -m infra.bench $(if $(WRITE_DOCS),--write-docs) $(foreach p,$(ONLY),--only $(p)) $(ARGS)

schema: $(STAMP) ## regenerate schema/gateway-config.schema.json from the config models
	$(PY) -m gateway.config schema > schema/gateway-config.schema.json

build: $(STAMP) ## sam build with compiled .pyc (CONFIG=path/to/gateway.yaml)
	bash infra/scripts/build.sh $(CONFIG)

deploy: $(STAMP) ## check AWS access, build with CONFIG, sam deploy (no questions): make deploy CONFIG=my-gateway.yaml
	@test -n "$(CONFIG)" || { echo "usage: make deploy CONFIG=path/to/gateway.yaml (the config ships inside the build)" >&2; exit 2; }
	@bash infra/scripts/deploy.sh --config "$(CONFIG)" $(if $(STACK_NAME),--stack-name "$(STACK_NAME)") \
		$(if $(REGION),--region "$(REGION)") $(foreach p,$(PARAMS),--parameter "$(p)")

clean: ## remove the virtualenv, build output and caches
	rm -rf $(VENV) .venv-sam .aws-sam .pytest_cache .mypy_cache .ruff_cache
