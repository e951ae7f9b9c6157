# Benchmarks (included by the root Makefile, which defines VENV). See benchmarks/README.md.
#   make bench        the full set: every server, 3 repetitions, medians (under 20 minutes)
#   make bench-quick  a one-minute subset, part of `make test` so the harness keeps working
VENV ?= .venv
BENCH_PYTHON := $(VENV)/bin/python
BENCH_STAMP := $(VENV)/.bench-installed
# fastapi-websocket-pubsub brings permit-broadcaster, which installs a package named
# `broadcaster` over the real one: it gets a virtualenv of its own.
PUBSUB_VENV := benchmarks/.venv-pubsub
PUBSUB_STAMP := $(PUBSUB_VENV)/.installed

.PHONY: bench bench-quick bench-medium bench-cost bench-memory bench-soak bench-venv bench-websub

$(BENCH_STAMP): benchmarks/requirements.txt $(STAMP)
	test -x $(BENCH_PYTHON) || python3 -m venv $(VENV)
	$(BENCH_PYTHON) -m pip install --quiet -e ".[dev]" -r benchmarks/requirements.txt
	touch $@

$(PUBSUB_STAMP): benchmarks/requirements-pubsub.txt
	test -x $(PUBSUB_VENV)/bin/python || python3 -m venv $(PUBSUB_VENV)
	$(PUBSUB_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-pubsub.txt
	touch $@

## Install what the benchmarks need (both virtualenvs)
bench-venv: $(BENCH_STAMP) $(PUBSUB_STAMP)

## Run every benchmark scenario (bounded: under 20 minutes); results in benchmarks/results/
bench: bench-venv
	$(BENCH_PYTHON) -m benchmarks --full --budget 1140

## Run the target scenarios only (about 10 minutes)
bench-medium: bench-venv
	$(BENCH_PYTHON) -m benchmarks --medium --budget 900

## What plans and metrics cost the fan-out: managed against unmanaged (about 6 minutes), and
## the event-loop turns a publish takes with and without a plan (seconds)
bench-cost: bench-venv
	$(BENCH_PYTHON) -m benchmarks --cost --budget 600
	$(BENCH_PYTHON) -m benchmarks.publish_turns

## Run the one-minute subset (CI checks that it runs, not how fast)
bench-quick: bench-venv
	$(BENCH_PYTHON) -m benchmarks --quick --budget 120
	$(BENCH_PYTHON) -m benchmarks.memory --connections 200
	$(BENCH_PYTHON) -m benchmarks.soak --quick

## WebSub: 1,000 subscribers x 20 events (paced, then as a burst, then over HTTPS), 10,000 x 5
bench-websub: bench-venv
	$(BENCH_PYTHON) -m benchmarks.websub
	$(BENCH_PYTHON) -m benchmarks.websub --rate 100
	$(BENCH_PYTHON) -m benchmarks.websub --tls
	$(BENCH_PYTHON) -m benchmarks.websub --subscribers 10000 --events 5

## Hold 2,000 SSE + 500 WebSocket clients for 30 minutes through churn and Redis restarts
bench-soak: bench-venv
	$(BENCH_PYTHON) -m benchmarks.soak

## Where the memory of an idle SSE connection goes, by layer (bound, FastAPI floor, ours)
bench-memory: bench-venv
	$(BENCH_PYTHON) -m benchmarks.memory --connections 2000
