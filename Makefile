# Two commands make a fresh machine useful: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run install console test lint typecheck pytest bench bench-actors bench-streams bench-chat bench-rest bench-memory bench-imports clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e '.[postgres,kafka,test,bench]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The agent console (console/): npm ci from the lock, then esbuild bundles it into
# mitra/console/dist. Stamped by the sources' and the lock's checksum, so it reruns only when
# they change.
CONSOLE_SOURCES := $(sort $(shell find console/src -type f)) console/build.mjs console/package.json
CONSOLE_STAMP := mitra/console/dist/.built-$(shell cat $(CONSOLE_SOURCES) console/package-lock.json | cksum | cut -d' ' -f1)

console/node_modules/.installed: console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error >&2
	touch $@

$(CONSOLE_STAMP): console/node_modules/.installed $(CONSOLE_SOURCES)
	cd console && node build.mjs
	touch $@

console: $(CONSOLE_STAMP)

install: $(STAMP) $(CONSOLE_STAMP)

# `make run PORT=8081` serves on another port; without PORT, the server.port setting applies.
run: install
	$(BIN)/mitra serve $(if $(PORT),--port $(PORT))

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: bench-actors bench-streams bench-chat bench-rest bench-memory bench-imports

bench-actors: install
	$(BIN)/python -m bench.actors_bench

bench-streams: install
	$(BIN)/python -m bench.streams_bench

# Mitra's WebSocket chat against a bare aiohttp broadcast server, both as real processes on
# loopback, at 1,000 and 5,000 sockets, Mitra on SQLite and on a private PostgreSQL database
# (dropped after), then two instances over PostgreSQL + tansu at 1,000 sockets: about 14 minutes
# on two shared cores. Pass flags with BENCH_CHAT_ARGS, e.g. "--sizes 1000 --database sqlite
# --no-two-instances" (about 2 minutes); `python -m bench.chat_bench -h` lists them all.
bench-chat: install
	$(BIN)/python -m bench.chat_bench $(BENCH_CHAT_ARGS)

# REST hot paths against a FastAPI + SQLAlchemy twin and a bare aiohttp ceiling, on SQLite and
# PostgreSQL, with wrk (about 3 minutes). Flags go in BENCH_REST_ARGS, e.g. "--database sqlite".
bench-rest: install
	$(BIN)/pip install --quiet -e '.[bench]'
	@command -v wrk >/dev/null || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq wrk; }
	$(BIN)/python -m bench.rest_bench $(BENCH_REST_ARGS)

# Memory that must come back: a 5-minute typing flood beside the bare server, then waves of
# sockets that connect, authenticate and drop (about 12 minutes). Flags go in BENCH_MEMORY_ARGS,
# e.g. "--seconds 60 --waves 4".
bench-memory: install
	$(BIN)/python -m bench.memory_bench $(BENCH_MEMORY_ARGS)

# The import pipeline, 100,000 rows of xlsx and of csv end to end on SQLite and PostgreSQL,
# beside a bare pyexcel parse and a bare Core executemany of the same rows. Flags go in
# BENCH_IMPORTS_ARGS, e.g. "--database sqlite --rows 20000".
bench-imports: install
	$(BIN)/python -m bench.imports_bench $(BENCH_IMPORTS_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info .mypy_cache .ruff_cache .pytest_cache console/node_modules mitra/console/dist
