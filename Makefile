# wallet-gateway — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

.PHONY: run test test-sqlite test-postgres lint format docs install migrate worker bench clean

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
	  || { echo "Python 3.11+ is required (try: make PYTHON=python3.11 ...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
	  -c requirements/constraints.txt -e '.[dev,production]'
	@touch $(STAMP)

install: $(STAMP)

## run: set up, migrate the embedded SQLite database and serve on http://127.0.0.1:8080
run: install
	$(BIN)/wallet-gateway migrate
	$(BIN)/wallet-gateway serve

## test: the whole suite on SQLite, then on PostgreSQL (127.0.0.1:5432, database `test`)
test: install
	$(PYTEST) --db=sqlite
	$(PYTEST) --db=postgresql

test-sqlite: install
	$(PYTEST) --db=sqlite

test-postgres: install
	$(PYTEST) --db=postgresql

## lint: ruff, mypy, hadolint on the Dockerfile, and the compose file parsed (no Docker engine needed)
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/hadolint docker/Dockerfile
	$(BIN)/docker-compose -f docker/compose.yaml config --quiet

## docs: regenerate the settings reference in docs/operations.md from gateway/settings.py
docs: install
	$(BIN)/wallet-gateway config docs --write docs/operations.md

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: install
	$(BIN)/wallet-gateway migrate

worker: install
	$(BIN)/wallet-gateway worker

## bench: the gateway stack under load on PostgreSQL, results in bench/results/ (bench/README.md)
bench: install
	$(BIN)/python -m bench gateway_load --profile 10

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
