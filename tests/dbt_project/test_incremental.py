"""Incremental builds, batch by batch, give exactly the full-refresh result and the source's true state."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import duckdb
import pytest

from warehouse.build.builder import Builder
from warehouse.runtime.configuration import PipelineSettings
from warehouse.ingest.land import connect

from .changelog import Changelog

MODELS = ["stg_orders__orders", "stg_orders__order_lines"]
MARTS = ["orders_with_invoices", "customer_summary"]


def _settings(path: Path) -> PipelineSettings:
    return PipelineSettings(home=path.parent, warehouse_path=path)


def _build(path: Path, full_refresh: bool = False, tests: bool = True):
    settings = _settings(path)
    builder = Builder(settings)
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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_equals_full_refresh_and_the_source(tmp_path, seed):
    rng = random.Random(seed)
    source = Changelog(rng)
    incremental = tmp_path / "incremental" / "warehouse.duckdb"
    incremental.parent.mkdir()
    untested: set[str] = set()
    for batch in range(12):
        for _ in range(rng.randrange(1, 40)):
            source.step()
        with duckdb.connect(str(incremental)) as conn:
            source.flush(conn)
        tests = rng.random() < 0.5  # as in `mirador run`: most builds run the models only
        result = _build(incremental, tests=tests)
        assert not result.skipped
        assert result.tested == (tests or batch == 0)
        untested |= set(result.selected)
        if result.tested:  # data tests cover everything built since the last tested build
            assert set(result.selected) == untested
            untested = set()
        if batch:  # only what the new batch touched is rebuilt
            assert set(result.selected) <= {"source:orders.order_lines+", "source:orders.orders+"}

    assert_equals_full_refresh(incremental, tmp_path / "full")

    with duckdb.connect(str(incremental), read_only=True) as a:
        # And it is the source's true state.
        orders = {row[0]: row for row in a.execute(
            "select order_id, status, cancel_reason, version from staging.stg_orders__orders where not _deleted").fetchall()}
        assert orders == {k: (k, o["status"], o["cancel_reason"], o["version"]) for k, o in source.orders.items()}
        lines = {(r[0], r[1]): r[2] for r in a.execute(
            "select order_id, line_no, quantity from staging.stg_orders__order_lines where not _deleted").fetchall()}
        assert lines == {k: line["quantity"] for k, line in source.lines.items()}
        totals = dict(a.execute("select order_id, order_total from marts.orders_with_invoices").fetchall())
        expected = {k: sum((line["quantity"] * line["unit_price"] for key, line in source.lines.items()
                            if key[0] == k), start=0) for k in source.orders}
        assert totals == expected
