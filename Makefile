# The two commands of the README: `make run` and `make test`. Both create .venv when missing.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)

RUN_STAMP := $(VENV)/.installed-run

.PHONY: install run test lint typecheck pytest docs docs-serve clean

$(STAMP): pyproject.toml $(PLUGINS)
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[dev]" $(foreach p,$(PLUGINS),-e "./$(dir $(p))[test]")
	touch $(STAMP)

# The official AsyncAPI parser and docs component the tests run (pinned with a lock file).
TOOLING := tests/tooling/node_modules/.installed
$(TOOLING): tests/tooling/package.json tests/tooling/package-lock.json
	npm ci --prefix tests/tooling --ignore-scripts --no-audit --no-fund
	touch $(TOOLING)

install: $(STAMP) $(TOOLING)

# What running the example needs; the development toolchain (above) waits for `make test`.
$(RUN_STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[run]"
	touch $(RUN_STAMP)

## Run the example app on the embedded default (memory broker, SQLite) at http://127.0.0.1:8000
# WEBSUB_ALLOW_LOOPBACK: the WebSub tutorial's receiver runs on this machine (off by default).
run: $(RUN_STAMP)
	WEBSUB_ALLOW_LOOPBACK=1 $(VENV)/bin/fastapi-streaming run example_app.main:app --host 127.0.0.1 --port 8000

## Run every check, the whole test suite, the docs build and a short run of the benchmarks
test: lint typecheck pytest docs bench-quick

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy
	for plugin in $(dir $(PLUGINS)); do (cd $$plugin && $(CURDIR)/$(VENV)/bin/mypy) || exit 1; done

# Three lanes run side by side, each its own pytest session with brokers and names of its own:
# the core suite, the plugins' suites, and the core tests that mostly wait (Kafka consumer group
# timeouts, a host cut from its broker) while using little CPU. The whole suite takes less wall
# time that way. Each lane writes build/<lane>-tests.log; the core's is also shown as it runs,
# the others follow it, and a recap of every lane's outcome and failures comes last.
PLUGIN_TESTS := $(addsuffix tests,$(dir $(PLUGINS)))
WAITING_TESTS := tests/cdc/test_debezium.py tests/cdc/test_debezium_failover.py \
	tests/e2e/test_processing_kafka.py tests/e2e/test_partitions.py

pytest: SHELL := /bin/bash
pytest: $(STAMP) $(TOOLING)
	mkdir -p build
	$(VENV)/bin/pytest $(PLUGIN_TESTS) >build/plugin-tests.log 2>&1 & plugins=$$!; \
	$(VENV)/bin/pytest $(WAITING_TESTS) >build/waiting-tests.log 2>&1 & waiting=$$!; \
	set -o pipefail; \
	$(VENV)/bin/pytest tests $(addprefix --ignore=,$(WAITING_TESTS)) 2>&1 | tee build/core-tests.log; \
	core=$$?; wait $$plugins; plugged=$$?; wait $$waiting; waited=$$?; \
	echo "---- the plugins' tests ($(PLUGIN_TESTS)) ----"; cat build/plugin-tests.log; \
	echo "---- the core tests that mostly wait ($(WAITING_TESTS)) ----"; cat build/waiting-tests.log; \
	echo "---- recap: core, plugins, waiting ----"; \
	grep -HE '^(FAILED|ERROR) |^=+ .*[0-9.]+s' build/core-tests.log build/plugin-tests.log build/waiting-tests.log; \
	test $$core -eq 0 && test $$plugged -eq 0 && test $$waited -eq 0

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

docs-serve: $(STAMP)
	$(VENV)/bin/mkdocs serve

clean:
	rm -rf $(VENV) build site .mypy_cache .ruff_cache .pytest_cache

include benchmarks/bench.mk
