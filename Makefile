# The two set-up commands (README): `make demo` and `make test`. Both build .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Two workers, one test file each at a time (pytest-xdist): every worker has its own session stack and
# chDB directory (chDB opens a directory in one process at a time), its own Postgres and Redis.
PYTEST_PARALLEL ?= -n 2 --dist loadfile

.PHONY: venv demo test test-fast lint format airflow bench clean browser

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(VENV)/bin/uv pip install --python $(PY) --quiet -e ".[dev,deploy]"
	touch $(STAMP)

# The UI tests drive Debian's Chromium with playwright (playwright cannot download its own browsers
# here). `make venv` installs it when it can (root with apt-get); `make test` insists on it.
CHROMIUM := /usr/bin/chromium
define install_chromium
	if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
endef

venv: $(STAMP)
	@$(install_chromium) || true

browser:
	@$(install_chromium)
	@test -x $(CHROMIUM) || { echo "make test: the UI tests need Chromium at $(CHROMIUM) (Debian: sudo apt-get install chromium)"; exit 1; }

demo: venv
	$(PY) -m backup_pipelines.dev.demo $(if $(filter-out 0,$(V)),--verbose)

# Postgres and Redis: $$BACKUP_PIPELINES_POSTGRES / $$BACKUP_PIPELINES_REDIS when set, else started from
# PyPI wheels by the test session (README "Two commands").
test: venv browser
	$(PY) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not e2e and not scheduler" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) tools/check_sizes.py

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The Airflow UI on the embedded stack (Postgres, LocalExecutor), for clicking runs and backfills.
# AIRFLOW_ARGS: e.g. --port 8081, --no-seed, --paused.
AIRFLOW_ARGS ?=
airflow: venv
	$(PY) -m backup_pipelines.dev.embedded airflow $(AIRFLOW_ARGS)

bench: venv
	for b in bench/[!_]*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .demo .pytest-airflow .embedded
