# Thin aliases. Everything installs into .venv/ at the repository root from requirements.lock.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck unit integration e2e policy bench check-templates layer clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.8

$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(UV) pip install --quiet --python $(BIN)/python -r requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## The main job: the whole suite up locally, the sample datasets through it, a summary table.
run: setup
	$(BIN)/sluice local run --sample

## The whole test suite (what CI runs).
test: setup lint typecheck check-templates
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy contracts sluice services tests bench loadtests

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

e2e: setup
	$(BIN)/pytest -q tests/e2e

policy: setup
	$(BIN)/pytest -q tests/policy

check-templates: setup
	@echo "check-templates: added with the deploy stacks"

bench: setup
	$(UV) pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/python -m bench.datapath

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .aws-sam build
