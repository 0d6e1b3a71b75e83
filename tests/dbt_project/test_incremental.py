"""Incremental builds, batch by batch, give exactly the full-refresh result and the sources' true state.

Every service writes (tests/dbt_project/services.py), so every staging model, every mart and each
mart's touched keys (macros/marts/) are exercised. After every build each model must hold what its
full-refresh query gives over its inputs as they now are: a mart left stale by a change its touched
keys miss is caught in the build that missed it, before a later change to the same key heals it.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from warehouse.build.builder import Builder
from warehouse.runtime.configuration import PipelineSettings
from warehouse.ingest.land import connect

from .changelog import land
from .services import Services

MODELS = ["stg_customers__customers", "stg_orders__orders", "stg_orders__order_lines", "stg_invoices__invoices",
          "stg_inventory__products", "stg_inventory__stock_events"]
MARTS = ["orders_with_invoices", "customer_summary", "product_stock", "stock_movements"]


def _settings(path: Path) -> PipelineSettings:
    return PipelineSettings(home=path.parent, warehouse_path=path)


def builder_for(path: Path) -> Builder:
    """One parsed project for a warehouse's builds, as in `mirador run`, but always through dbt (no replays)."""
    return Builder(PipelineSettings(home=path.parent, warehouse_path=path, run_replay=False))


def _build(path: Path, full_refresh: bool = False, tests: bool = True, builder: Builder | None = None):
    settings = builder.settings if builder else _settings(path)
    builder = builder or Builder(settings)
    result = builder.build(lambda: connect(path, settings), full_refresh=full_refresh, tests=tests)
    assert result.success, result.failures
    return result


def _table(conn: duckdb.DuckDBPyConnection, name: str, schema: str) -> set[tuple]:
    # A mart row's `_built_batch` names the build that wrote it: by design not what a full refresh stamps.
    exclude = " exclude (_built_batch)" if schema == "marts" else ""
    return set(conn.execute(f"select *{exclude} from {schema}.{name}").fetchall())


def assert_equals_full_refresh(built: Path, workdir: Path) -> None:
    """A full refresh of a copy of `built` (in `workdir`) holds exactly what `built` holds."""
    full = workdir / "warehouse.duckdb"
    workdir.mkdir()
    shutil.copy(built, full)
    _build(full, full_refresh=True)
    with duckdb.connect(str(built), read_only=True) as a, duckdb.connect(str(full), read_only=True) as b:
        for name in MODELS:
            assert _table(a, name, "staging") == _table(b, name, "staging"), name
        for name in MARTS:
            assert _table(a, name, "marts") == _table(b, name, "marts"), name


@pytest.fixture(scope="module")
def full_refresh_queries(tmp_path_factory) -> dict[str, str]:
    """Each model's full-refresh query, as dbt compiles it for a warehouse file of the same name."""
    home = tmp_path_factory.mktemp("compiled")
    with duckdb.connect(str(home / "warehouse.duckdb")) as conn:  # raw tables, not their stand-ins
        land(conn, Services(random.Random(0)).tables, [])
    project = Path(__file__).resolve().parents[2] / "dbt_project"
    subprocess.run([str(Path(sys.executable).parent / "dbt"), "--quiet", "compile", "--full-refresh",
                    "--project-dir", str(project), "--profiles-dir", str(project), "--target-path", str(home / "target"),
                    "--log-path", str(home), "--select", *MODELS, *MARTS], check=True, stdout=subprocess.DEVNULL,
                   env=os.environ | {"MIRADOR_WAREHOUSE_PATH": str(home / "warehouse.duckdb")})
    compiled = home / "target" / "compiled" / "mirador" / "models"
    return {name: next(compiled.rglob(f"{name}.sql")).read_text() for name in MODELS + MARTS}


def assert_models_equal_their_queries(path: Path, queries: dict[str, str]) -> None:
    """Every model at `path` holds exactly what its full-refresh query gives over its inputs there."""
    with duckdb.connect(str(path), read_only=True) as conn:
        for name, query in queries.items():
            schema, exclude = ("staging", "") if name in MODELS else ("marts", " exclude (_built_batch)")
            held = set(conn.execute(f"select *{exclude} from {schema}.{name}").fetchall())
            assert held == set(conn.execute(f"select *{exclude} from ({query})").fetchall()), name


def _selectors(tables: set[str]) -> set[str]:
    """What a build selects for the raw tables that changed: `<service>__<table>` is source `<service>.<table>`."""
    return {"source:{}.{}+".format(*table.split("__", 1)) for table in tables}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_equals_full_refresh_and_the_sources(tmp_path, seed, full_refresh_queries):
    rng = random.Random(seed)
    source = Services(rng)
    incremental = tmp_path / "incremental" / "warehouse.duckdb"
    incremental.parent.mkdir()
    builder = builder_for(incremental)
    untested: set[str] = set()
    batch = 0
    while batch < 12 or not source.settled:
        for _ in range(rng.randrange(1, 60) if batch < 12 else 0):  # then the held and late events land
            source.step()
        with duckdb.connect(str(incremental)) as conn:
            landed = source.flush(conn, hold=batch < 11)
        tests = rng.random() < 0.3  # as in `mirador run`: most builds run the models only
        result = _build(incremental, tests=tests, builder=builder)
        assert result.skipped == (batch > 0 and not landed and not (tests and untested))
        untested |= _selectors(landed)
        if batch and not result.skipped:  # only what changed is rebuilt: since the last tested build, if tested
            assert set(result.selected) == (untested if result.tested else _selectors(landed))
        if result.tested:
            untested = set()
        assert_models_equal_their_queries(incremental, full_refresh_queries)
        batch += 1

    assert_equals_full_refresh(incremental, tmp_path / "full")

    with duckdb.connect(str(incremental), read_only=True) as built:
        def rows(sql: str) -> set[tuple]:
            return set(built.execute(sql).fetchall())

        # Every table that changes had creates, updates and deletes.
        for table in ("customers__customers", "orders__orders", "orders__order_lines", "invoices__invoices",
                      "inventory__products"):
            ops = {op for op, in built.execute(f"select distinct _op from raw.{table}").fetchall()}
            assert {"c", "u", "d"} <= ops, (table, ops)

        # And it is the sources' true state, renamed as staging names it.
        assert rows("select customer_id, customer_name, customer_email, country, version "
                    "from staging.stg_customers__customers where not _deleted") == {
            (c["id"], c["name"], c["email"], c["country"], c["version"]) for c in source.customers.customers.values()}
        assert rows("select order_id, status, cancel_reason, version from staging.stg_orders__orders "
                    "where not _deleted") == {
            (k, o["status"], o["cancel_reason"], o["version"]) for k, o in source.orders.orders.items()}
        assert rows("select order_id, line_no, quantity from staging.stg_orders__order_lines where not _deleted") == {
            (*key, line["quantity"]) for key, line in source.orders.lines.items()}
        assert rows("select invoice_id, order_id, status, document_url, version from staging.stg_invoices__invoices "
                    "where not _deleted") == {
            (i["id"], i["order_id"], i["status"], i["document_url"], i["version"])
            for i in source.invoices.invoices.values()}
        assert rows("select product_id, product_name, list_price, retired_at from staging.stg_inventory__products "
                    "where not _deleted") == {
            (p["id"], p["name"], p["list_price"], p["retired_at"]) for p in source.products.products.values()}

        totals = dict(built.execute("select order_id, order_total from marts.orders_with_invoices").fetchall())
        assert totals == {k: sum((line["quantity"] * line["unit_price"] for key, line in source.orders.lines.items()
                                  if key[0] == k), start=0) for k in source.orders.orders}
        open_amounts = dict(built.execute("select customer_id, open_invoice_amount from marts.customer_summary"
                                          ).fetchall())
        assert open_amounts == {c: sum((i["amount"] for i in source.invoices.invoices.values()
                                        if i["status"] == "issued" and i["order_id"] in source.orders.orders
                                        and source.orders.orders[i["order_id"]]["customer_id"] == c), start=0)
                                for c in source.customers.customers}
        stock = dict(built.execute("select product_id, current_stock from marts.product_stock").fetchall())
        assert stock == {p: source.stock.stock.get(p, 0) for p in source.products.products}
