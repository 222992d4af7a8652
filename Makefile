# dsml-platform: `make up` runs the platform, `make test` runs the whole suite.
# Both bootstrap everything they need on a fresh Debian machine (venv, pip, npm, apt-get).

# as root, user accounts run the platform's Python too (servers, jobs): build the venv from an
# interpreter every account can run (Debian's), not one under /root (mode 0700)
PYTHON ?= $(shell [ "$$(id -u)" = 0 ] && [ -x /usr/bin/python3.11 ] && echo /usr/bin/python3.11 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= .dsml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test lint format bench fuzz bootstrap venv-check system-python chromium clean

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

# every REST API fuzzed from its OpenAPI file as a user and as an admin (tests/test_fuzz.py)
# with many more examples per operation than `make test`'s pass: about 27 minutes on 2 cores
FUZZ_EXAMPLES ?= 400
fuzz: bootstrap
	DSML_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/test_fuzz.py --timeout=0

bootstrap: venv-check $(VENV)/.installed node_modules/.installed

# a venv made as root from an interpreter other accounts cannot run is made again
venv-check:
	@if [ "$$(id -u)" = 0 ] && [ -x $(BIN)/python ] && ! setpriv --reuid=65534 --regid=65534 --clear-groups $(BIN)/python -c 'import os, sys; os.stat(os.path.realpath(sys.executable))' 2>/dev/null; then \
		echo "$(VENV) uses an interpreter other accounts cannot run; making it again from $(PYTHON)"; rm -rf $(VENV); fi

# as root, Debian's python3.11 (and its venv module) when the machine lacks it
system-python:
	@if [ "$$(id -u)" = 0 ] && ! /usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3.11 python3.11-venv; fi

$(BIN)/python: | system-python
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
# systemd-analyze (Debian package systemd) checks the unit of `dsml systemd-unit`;
# Debian's PostgreSQL is started by tests/test_postgresql.py as the services' database
chromium:
	@command -v chromium >/dev/null && command -v systemd-analyze >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y chromium systemd postgresql; }

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
