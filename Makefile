# Two commands make a fresh machine useful: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run install test lint typecheck pytest bench bench-actors bench-streams bench-chat clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[postgres,kafka,test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/mitra serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: bench-actors bench-streams bench-chat

bench-actors: install
	$(BIN)/python -m bench.actors_bench

bench-streams: install
	$(BIN)/python -m bench.streams_bench

# Mitra's WebSocket chat against a bare aiohttp broadcast server, both as real processes on
# loopback (about 5 minutes). Pass flags with BENCH_CHAT_ARGS, e.g. "--sizes 1000".
bench-chat: install
	$(BIN)/python -m bench.chat_bench $(BENCH_CHAT_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info .mypy_cache .ruff_cache .pytest_cache
