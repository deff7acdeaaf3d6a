# The two set-up commands (README): `make demo` and `make test`. Both build .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv demo test test-fast lint format airflow bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(VENV)/bin/uv pip install --python $(PY) --quiet -e ".[dev,deploy]"
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(PY) -m backup_pipelines.dev.demo

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -m "not e2e and not scheduler" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) tools/check_sizes.py

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The Airflow UI (airflow standalone) on the embedded stack, for clicking runs and backfills.
airflow: venv
	$(PY) -m backup_pipelines.dev.embedded airflow

bench: venv
	for b in bench/[!_]*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .demo .pytest-airflow .embedded
