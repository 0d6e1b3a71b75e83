"""Replayed builds and data tests (warehouse/build/recordings.py) give what dbt gives, and step aside when they cannot."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pytest

from warehouse.build.builder import Builder
from warehouse.ingest.land import connect
from warehouse.build.recordings import PLACEHOLDER, Recordings

from .changelog import Changelog
from .test_incremental import _settings, assert_equals_full_refresh


def _builder(path: Path) -> tuple[Builder, callable]:
    settings = _settings(path)
    return Builder(settings), lambda: connect(path, settings)


def _land(source: Changelog, path: Path, steps: int) -> None:
    for _ in range(steps):
        source.step()
    with duckdb.connect(str(path)) as conn:
        source.flush(conn)


@pytest.mark.parametrize("seed", [1, 2])
def test_replayed_builds_equal_full_refresh(tmp_path, seed):
    rng = random.Random(seed)
    source = Changelog(rng)
    path = tmp_path / "replayed" / "warehouse.duckdb"
    path.parent.mkdir()
    builder, connection = _builder(path)
    replayed = []
    for batch in range(14):
        _land(source, path, rng.randrange(1, 40))
        result = builder.build(connection, tests=rng.random() < 0.2)
        assert result.success, result.failures
        assert not (result.replayed and result.tested)  # data tests go through dbt
        assert (result.cpu_seconds or 0) > 0 if result.replayed else result.cpu_seconds is None
        replayed.append(result.replayed)
    # The first build creates the tables, the next two dbt runs confirm the recording; then replays.
    assert not any(replayed[:3])
    assert sum(replayed) >= 6, replayed
    assert_equals_full_refresh(path, tmp_path / "full")


def _confirmed(source: Changelog, path: Path, builder: Builder, connection) -> None:
    for _ in range(3):
        _land(source, path, 30)
        assert builder.build(connection, tests=False).success
    _land(source, path, 30)
    result = builder.build(connection, tests=False)
    assert result.success and result.replayed


def test_a_schema_change_goes_back_to_dbt(tmp_path):
    source = Changelog(random.Random(4))
    path = tmp_path / "warehouse.duckdb"
    builder, connection = _builder(path)
    _confirmed(source, path, builder, connection)
    with duckdb.connect(str(path)) as conn:  # a new source column, as the loader adds them
        conn.execute("alter table raw.orders__orders add column gift_note varchar")
    replayed = []
    for _ in range(4):
        _land(source, path, 30)
        result = builder.build(connection, tests=False)
        assert result.success, result.failures
        replayed.append(result.replayed)
    assert replayed == [False, False, True, True]  # recorded on the new schema, confirmed, replayed
    assert_equals_full_refresh(path, tmp_path / "full")


def test_a_failing_replay_is_rolled_back_and_built_by_dbt(tmp_path):
    source = Changelog(random.Random(5))
    path = tmp_path / "warehouse.duckdb"
    builder, connection = _builder(path)
    _confirmed(source, path, builder, connection)
    mart = next(model for model in builder.recordings.statements if model.endswith("orders_with_invoices"))
    statements = builder.recordings.statements[mart]
    # Fails inside the mart's transaction, after its delete+insert.
    builder.recordings.statements[mart] = (*statements[:-1], "insert into marts.no_such_table values (1)", statements[-1])
    _land(source, path, 30)
    result = builder.build(connection, tests=False)
    assert result.success and not result.replayed
    assert not builder.recordings.confirmed  # forgotten, recorded anew by dbt
    assert builder.recordings.failures == {mart: 1}
    assert_equals_full_refresh(path, tmp_path / "full")


def test_data_tests_are_replayed_and_still_catch_failures(tmp_path):
    source = Changelog(random.Random(6))
    path = tmp_path / "warehouse.duckdb"
    builder, connection = _builder(path)
    _land(source, path, 30)
    assert builder.build(connection).success
    replayed = []
    for _ in range(3):
        _land(source, path, 30)
        assert builder.build(connection, tests=False).success
        result = builder.test(connection)
        assert result.success, result.failures
        replayed.append(result.replayed)
    assert replayed == [False, False, True]  # recorded, confirmed, replayed

    _land(source, path, 30)
    assert builder.build(connection, tests=False).success
    with duckdb.connect(str(path)) as conn:  # a duplicate key: the mart's `unique` test fails
        conn.execute("insert into marts.orders_with_invoices select * from marts.orders_with_invoices limit 1")
    result = builder.test(connection)
    assert result.replayed and not result.success
    assert [f for f in result.failures if f.startswith("unique_orders_with_invoices_order_id")], result.failures


class _Event:
    """The parts of dbt's SQLQuery event that `Recordings.observe` reads."""

    def __init__(self, node: str, sql: str, name: str = "SQLQuery") -> None:
        self.info = type("Info", (), {"name": name})()
        self.data = type("Data", (), {"sql": sql, "node_info": type("Node", (), {"unique_id": node})()})()


def _record(plans: Recordings, statements: dict[str, list[str]], through: int, schema: str = "s") -> None:
    plans.start()
    for node, sqls in statements.items():
        for sql in sqls:
            plans.observe(_Event(node, sql))
    plans.observe(_Event("test.mirador.unique_x", "select 1"))
    plans.observe(_Event("model.mirador.a", "select 2", name="SQLQueryStatus"))
    plans.learn(plans.stop(), through, schema, schema)


def test_only_recordings_two_runs_agree_on_are_replayed():
    plans = Recordings(recheck=300)
    bound = "select * from raw.t where _batch_id <= {} /* mirador_through_batch */"
    stable = lambda n: ["/* {\"app\": \"dbt\"} */ select column_name from information_schema.columns",  # noqa: E731
                        f"create temporary table a__dbt_tmp2026112{n} as ({bound.format(n)})", "BEGIN",
                        "delete from a", "COMMIT"]
    moving = lambda n: ["BEGIN", f"insert into b select now() - interval {n} second", "COMMIT"]  # noqa: E731
    _record(plans, {"model.mirador.a": stable(7), "model.mirador.b": moving(7)}, through=7)
    assert not plans.confirmed
    # dbt opens the transaction before or after creating the temporary table: the same plan.
    begin_first = stable(9)
    begin_first.insert(1, begin_first.pop(2))
    _record(plans, {"model.mirador.a": begin_first, "model.mirador.b": moving(9)}, through=9)
    assert set(plans.confirmed) == {"model.mirador.a"}
    assert plans.statements["model.mirador.a"] == (
        f"create temporary table a__mirador_tmp as (select * from raw.t where _batch_id {PLACEHOLDER})",
        "BEGIN", "delete from a", "COMMIT")
    assert plans.covers(["model.mirador.a"], "s") and not plans.covers(["model.mirador.b"], "s")
    assert not plans.covers(["model.mirador.a"], "another schema")
    plans.recheck = 0  # a confirmation holds only so long: then dbt runs the model again
    assert not plans.covers(["model.mirador.a"], "s")
    plans.recheck = 300

    # A transaction that does not close, or an abridged statement, is not replayable.
    _record(plans, {"model.mirador.c": ["BEGIN", "delete from c"],
                    "model.mirador.d": ["BEGIN", "insert ...", "COMMIT"]}, through=9)
    assert "model.mirador.c" not in plans.statements and "model.mirador.d" not in plans.statements

    # A data test is its one query counting failing rows; one that also writes is left to dbt.
    count = "select count(*) as failures, count(*) != 0 as should_warn, count(*) != 0 as should_error from (q)"
    for _ in range(2):
        _record(plans, {"test.mirador.t": ["select 1 from duckdb_databases()", "BEGIN", count],
                        "test.mirador.stored": ["create table dbt_test__audit.x as (q)", count]}, through=9)
    assert plans.statements["test.mirador.t"] == (count,) and "test.mirador.t" in plans.confirmed
    assert "test.mirador.stored" not in plans.statements

    # A bound that is not the run's batch is not this builder's doing: not replayable.
    _record(plans, {"model.mirador.a": [f"insert into a {bound.format(3)}"]}, through=11)
    assert "model.mirador.a" not in plans.statements and "model.mirador.a" not in plans.confirmed
