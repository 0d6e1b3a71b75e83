# mirador: `make demo` runs the main job, `make test` passes the tests. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test faults fixtures down status clean bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "mirador needs Python 3.11+" or 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# The main job, live: the CDC stack, the four write services, `mirador run` and `mirador serve`, shop
# traffic through the services' commands; the page at http://127.0.0.1:8100/ shows the views moving.
# Until Ctrl-C (or `make down`); `make demo DEMO_SECONDS=60` stops by itself. Then verify and a summary.
DEMO_SECONDS ?= 0
DEMO_RATE    ?= 20
demo: install
	$(BIN)/mirador demo --seconds $(DEMO_SECONDS) --rate $(DEMO_RATE)

# Lint and format first (seconds), then the suite against the real stack.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# The fault suite: kill -9 and restarts of `mirador run`, Connect, Kafka and Postgres, the warehouse held
# too long, an idle database, each under shop traffic, on a scratch stack of its own (tests/faults); about
# 10 minutes on a quiet machine (40 when others load it). Recovery times go to .mirador/faults-report.json.
faults: install
	$(BIN)/pytest -m faults tests/faults

# Every benchmark, then BENCHMARKS.md and its plots (docs/bench/) regenerated from what they measured.
# Quick mode takes about 10 minutes on 2 cores; `make bench BENCH_MODE=full` runs the full sizes.
# The plots need matplotlib, kept out of the project's venv in $(BENCH_VENV).
BENCH_MODE ?= quick
BENCH_VENV ?= .venv-bench
bench: install $(BENCH_VENV)/.installed
	@command -v wrk >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; }
	$(BIN)/mirador stack up
	$(BENCH_VENV)/bin/python bench/report.py --mode $(BENCH_MODE)

$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet 'matplotlib==3.11.2'
	@touch $@

fixtures: install
	$(BIN)/mirador stack up
	$(BIN)/mirador stack capture --out tests/fixtures/debezium

status: install
	$(BIN)/mirador stack status

down: install
	$(BIN)/mirador demo --stop
	$(BIN)/mirador serve --stop
	$(BIN)/mirador services down
	$(BIN)/mirador stack down

clean: down
	rm -rf .mirador
