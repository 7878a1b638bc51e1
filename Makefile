# dealwatch from nothing: `make run` (the whole pipeline with a demo) and `make test` (every check).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dealwatch-installed
COMPOSE_ENV := deploy/dealwatch.env.example

.PHONY: help setup run test lint typecheck imports schemas compose pytest postgres chromium clean

help:
	@echo "make run    set up .venv if needed, then run dealwatch with a demo CRM stream (dealwatch up --demo)"
	@echo "make test   set up .venv if needed, then ruff, mypy, import-linter, schema drift, docker-compose"
	@echo "            validation and pytest (unit, integration, e2e); starts the local PostgreSQL if it is down"
	@echo "            and installs Debian's chromium (the dashboard's browser test) if it is missing"
	@echo "make fuzz   the hostile-input tests at full size (10,000+ generated requests; a few minutes)"
	@echo "make faults the fault tests at full size: 5,000 events x3 redelivered, 20,000 events with the workers"
	@echo "            killed 5 times each, the broker frozen 30 s under 100 webhooks/s (3-4 minutes)"

# The virtualenv, reinstalled when pyproject.toml or a C source changes (the install compiles the lexicon's
# scanner in place, services/detector/domain/causes/_scan.c; without gcc the install goes on and the tests say so).
NATIVE_SOURCES := $(wildcard services/*/domain/*/*.c services/*/domain/*.pyx services/*/domain/*.pxd services/*/domain/*/*.pyx services/*/domain/*/*.pxd)

setup: $(STAMP)

$(STAMP): pyproject.toml $(NATIVE_SOURCES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing dealwatch with its development tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' > $(VENV)/pip.log 2>&1 \
		|| { cat $(VENV)/pip.log; echo "error: pip install -e '.[dev]' failed (log above)"; exit 1; }
	@touch $@

run: setup
	$(BIN)/dealwatch up --demo

test: setup lint typecheck imports schemas compose pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

imports: setup
	$(BIN)/lint-imports

schemas: setup
	$(BIN)/python -m schemas.generate --check

compose:
	@bash scripts/ensure-docker-compose.sh
	DEALWATCH_ENV_FILE=$(COMPOSE_ENV) docker-compose -f docker-compose.yml config -q

postgres:
	@bash scripts/ensure-postgres.sh

chromium:
	@bash scripts/ensure-chromium.sh

pytest: setup postgres chromium
	$(BIN)/python -m pytest -q -ra --durations=25 -m "not soak"

# The hostile-input tests (tests/integration/hostile) at full size: every test draws FUZZ_EXAMPLES examples
# (per API operation too), and the run fails unless at least FUZZ_MIN_REQUESTS requests were sent.
FUZZ_EXAMPLES ?= 500
FUZZ_MIN_REQUESTS ?= 10000

.PHONY: fuzz
fuzz: setup postgres
	DEALWATCH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) DEALWATCH_FUZZ_MIN_REQUESTS=$(FUZZ_MIN_REQUESTS) \
		$(BIN)/python -m pytest -q -ra -p no:cacheprovider --timeout 1800 tests/integration/hostile

# The fault tests (tests/integration/faults: redelivery, worker crashes, broker outage) at the test plan's sizes;
# `make test` runs them at CI size, except the soak ones (two detectors taken down in turns). -s shows the figures
# each test prints.
.PHONY: faults
faults: setup postgres
	DEALWATCH_FAULT_SCALE=full $(BIN)/python -m pytest -q -ra -s -p no:cacheprovider --timeout 1800 \
		tests/integration/faults

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
