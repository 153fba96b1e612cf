# The single source of set-up. `make test` and `make demo` work on a fresh machine with nothing
# installed by hand: they create .venv, install the project and its test tools, and run.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all venv test lint typecheck pytest demo bench schemas clean

all: test

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=25.1" 2>&1 | grep -v "^WARNING: Location" || true
	$(PIP) install --quiet -e . --group dev 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import vexrun, pytest, ruff, mypy" 
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/vexrun inspect examples/memories.vmig.jsonl
	$(BIN)/vexrun validate examples/memories.vmig.jsonl

bench: $(STAMP)
	$(BIN)/python bench/bench_vmig.py

schemas: $(STAMP)
	$(BIN)/python -m vexrun.schemas

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
