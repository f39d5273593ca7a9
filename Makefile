# HotSpot: every set-up step is a target; `make run` and `make test` need nothing else.
#
#   make run      create .venv, install, start the server on http://127.0.0.1:8080
#                 (embedded PostgreSQL in ./var/pg, in-process bus, queue and workers)
#   make test     create .venv, install, make sure PostgreSQL, Redis and RabbitMQ
#                 answer and Chromium is installed (apt-get, as root), run the whole
#                 test suite against them (PYTEST_ARGS=... to narrow)
#   make lint     ruff + mypy
#   make migrate  apply database migrations (embedded database unless HOTSPOT_DATABASE_URL)
#   make worker   run queue workers (WORKERS=all by default)
#   make bench    realtime benchmark: HotSpot vs a bare python-socketio server, table
#                 in docs/benchmarks.md (BENCH_ARGS=--quick for a fast smoke run)
#                 and notification fan-out with RabbitMQ in the loop, in
#                 docs/benchmarks-notifications.md, and media images per second
#                 (worker vs direct Pillow) in docs/benchmarks-media.md, and the
#                 home feed on 1M items vs a bare aiohttp page at the same request
#                 rate, in docs/benchmarks-feeds.md, and analytics events per second
#                 (RabbitMQ + worker vs a plain COPY) and admin report latency, in
#                 docs/benchmarks-analytics.md

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Written after a successful install; re-install only when pyproject.toml is newer.
STAMP  := $(VENV)/.installed
WORKERS ?= all
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-k login -x'
PYTEST_ARGS ?=
# Extra benchmark arguments, e.g. make bench BENCH_ARGS=--quick
BENCH_ARGS ?=

# The JavaScript client tests are optional: their deps are installed only if tests/js exists.
JS_DIR   := tests/js
JS_STAMP := $(if $(wildcard $(JS_DIR)/package.json),$(JS_DIR)/node_modules/.installed)

.PHONY: help install run serve test lint migrate worker services browser bench clean

help:
	@echo "make run      start HotSpot on http://127.0.0.1:8080 (no services needed)"
	@echo "make test     run the whole test suite (PostgreSQL, Redis, RabbitMQ started if local;"
	@echo "              Debian's chromium installed with apt-get if missing, for the browser tests)"
	@echo "make lint     ruff check + mypy"
	@echo "make migrate  apply database migrations"
	@echo "make worker   run queue workers (WORKERS=$(WORKERS))"
	@echo "make bench    realtime benchmark, HotSpot vs bare python-socketio (BENCH_ARGS=--quick)"
	@echo "make clean    remove .venv and caches (keeps ./var, the embedded database)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check --no-input -e '.[dev]'
	@touch $@

install: $(STAMP) $(JS_STAMP)

$(JS_DIR)/node_modules/.installed: $(JS_DIR)/package.json $(wildcard $(JS_DIR)/package-lock.json)
	@command -v npm >/dev/null || { echo "npm is not installed: it is needed for the tests in $(JS_DIR)" >&2; exit 1; }
	cd $(JS_DIR) && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; \
		else npm install --no-audit --no-fund; fi
	@mkdir -p $(dir $@) && touch $@

run serve: $(STAMP)
	exec $(BIN)/hotspot serve

migrate: $(STAMP)
	$(BIN)/hotspot migrate

worker: $(STAMP)
	exec $(BIN)/hotspot worker $(WORKERS)

services:
	bash scripts/ensure-services.sh

# Headless Chromium for the browser tests: /usr/bin/chromium, apt-get installed when missing.
browser:
	bash scripts/ensure-browser.sh

test: install services browser
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(STAMP) services
	$(BIN)/python -m bench.realtime $(BENCH_ARGS)
	$(BIN)/python -m bench.notifications $(filter --quick,$(BENCH_ARGS))
	$(BIN)/python -m bench.media $(filter --quick,$(BENCH_ARGS))
	$(BIN)/python -m bench.feeds $(filter --quick,$(BENCH_ARGS))
	$(BIN)/python -m bench.analytics $(filter --quick,$(BENCH_ARGS))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build $(JS_DIR)/node_modules
