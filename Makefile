# The two commands: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DATA   := .data
WORKSPACE_URL ?= http://127.0.0.1:50053

.PHONY: install run test lint typecheck unit e2e bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Serve on 127.0.0.1:50053 with local workspaces under .data/ (Ctrl-C stops). State is in memory,
## or in Valkey with `make run VALKEY_ADDR=host:port`.
run: install
	mkdir -p $(DATA)
	WORKSPACE_ROOT=$(CURDIR)/$(DATA)/workspaces ARTIFACT_ROOT=$(CURDIR)/$(DATA)/artifacts \
	$(if $(VALKEY_ADDR),VALKEY_ADDR=$(VALKEY_ADDR) SESSION_STORE_BACKEND=valkey INVOCATION_STORE_BACKEND=valkey) \
	RAY_ADDRESS=local RAY_USAGE_STATS_ENABLED=0 $(BIN)/serve run ray_config/local.yaml

## Lint, type-check and run the whole suite (unit, HTTP contract, Ray Serve end-to-end).
test: install lint typecheck
	$(BIN)/python scripts/test_services.py -- $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check serve_app tests bench scripts

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python scripts/test_services.py -- $(BIN)/python -m pytest -q -m "not serve"

e2e: install
	$(BIN)/python scripts/test_services.py -- $(BIN)/python -m pytest -q -m serve

bench: install
	$(BIN)/python bench/bench_invoke.py

docs: install
	$(BIN)/python scripts/gen_tools_doc.py > docs/TOOLS.md

clean:
	rm -rf $(DATA) .pytest_cache .mypy_cache .ruff_cache
