# Two commands for a newcomer (see README.md):
#   make dev   runs the worker against the embedded broker and the local Personalize
#   make test   runs the test suite
# Both create .venv and install everything on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml devkit/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install dev test faults lint bench audit docs clean

# Both distributions: the production worker (with test tools) and the development kit.
$(STAMP): pyproject.toml devkit/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e './devkit[broker]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/python -m worker.cli dev $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check worker devkit tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run $(ARGS)

# Exit 0 audited and clean, 1 vulnerabilities found, 3 NOT AUDITED (no advisory database reachable).
audit: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,audit]'
	$(BIN)/python deploy/dependency_audit.py

faults: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m faults tests/faults

docs: $(STAMP)
	$(BIN)/python -m worker.config.docs README.md

lint: $(STAMP)
	$(BIN)/ruff check worker devkit tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
