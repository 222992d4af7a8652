# dsml-platform: `make up` runs the platform, `make test` runs the whole suite.
# Both bootstrap everything they need on a fresh Debian machine (venv, pip, npm, apt-get).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= .dsml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test lint format bench bootstrap chromium clean

up: bootstrap
	$(BIN)/dsml up --demo --data-dir $(DATA_DIR)

test: bootstrap chromium lint
	$(BIN)/pytest

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: bootstrap
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: bootstrap
	$(BIN)/python bench/run.py

bootstrap: $(VENV)/.installed node_modules/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip uv

$(VENV)/.installed: pyproject.toml overrides.txt $(BIN)/python
	UV_COMPILE_BYTECODE=1 $(BIN)/uv pip install --python $(BIN)/python --override overrides.txt -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	command -v npm >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs npm; }
	npm ci --no-audit --no-fund
	touch $@

# Debian's Chromium drives the browser tests (Playwright with executablePath /usr/bin/chromium);
# systemd-analyze (Debian package systemd) checks the unit of `dsml systemd-unit`
chromium:
	@command -v chromium >/dev/null && command -v systemd-analyze >/dev/null || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y chromium systemd; }

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
