# mirador: `make demo` runs the main job, `make test` passes the tests. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test fixtures down status clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "mirador needs Python 3.11+" or 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# The main job: the CDC stack, the four write services, shop traffic through their commands, the
# changes loaded into DuckDB, the view tables built and published, checked against Postgres, and served
# by the read API on http://127.0.0.1:8100 (the page at /, the docs at /docs) until `make down`.
demo: install
	$(BIN)/mirador stack up
	$(BIN)/mirador services up
	$(BIN)/mirador simulate --rate 50 --duration 10 --seed 1
	$(BIN)/mirador load --once --no-progress
	$(BIN)/mirador build
	$(BIN)/mirador verify
	$(BIN)/mirador views --limit 3
	$(BIN)/mirador serve --detach
	$(BIN)/python -c 'import httpx; print(httpx.get("http://127.0.0.1:8100/views/orders_with_invoices?limit=2&fields=order_id,status,order_total,invoice_document_url").text)'
	$(BIN)/mirador stack status

test: install
	$(BIN)/pytest

fixtures: install
	$(BIN)/mirador stack up
	$(BIN)/mirador stack capture --out tests/fixtures/debezium

status: install
	$(BIN)/mirador stack status

down: install
	$(BIN)/mirador serve --stop
	$(BIN)/mirador services down
	$(BIN)/mirador stack down

clean: down
	rm -rf .mirador
