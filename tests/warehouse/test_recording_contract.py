"""The recording contract: what `mirador run` records of a fixed model and its data tests, on the pinned dbt.

The replay executes the SQL dbt executed (warehouse/build/recordings.py), so what dbt and dbt-duckdb
execute for an incremental model is a contract the pins in pyproject.toml hold. A fixed project
(tests/fixtures/recording) is built the way `mirador run` builds, until its model and tests are
recorded, confirmed and replayed, and the normalised recording must equal the golden one
(tests/fixtures/recording/golden.json). An upgrade that records other SQL fails here, naming the
statements, rather than silently falling back to dbt or replaying what dbt no longer runs. When the
new SQL is right (the replay's normalisation still holds), record it again:

    MIRADOR_RECORD_GOLDEN=1 .venv/bin/pytest tests/warehouse/test_recording_contract.py
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import duckdb

from warehouse import ledger
from warehouse.build.builder import Builder
from warehouse.ingest.land import connect
from warehouse.runtime.configuration import PipelineSettings

PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "recording"
GOLDEN = PROJECT / "golden.json"
NODES = ["balances", "not_null_balances_account_id", "unique_balances_account_id"]
"""The fixed model and its data tests (by name: a test's id carries a hash of its arguments)."""


def _land(path: Path, batch: int, rows: list[tuple[int, str | None]]) -> None:
    """One loader batch of `raw.shop__events`: (account, amount) events, recorded in the ledger."""
    with duckdb.connect(str(path)) as conn:
        ledger.create(conn)
        conn.execute(
            "create table if not exists raw.shop__events (account_id integer, amount decimal(12,2), _batch_id bigint)"
        )
        conn.executemany("insert into raw.shop__events values (?, ?, ?)", [[a, m, batch] for a, m in rows])
        ledger.record_batch(
            conn,
            batch,
            datetime.now(UTC),
            messages=len(rows),
            events=len(rows),
            tombstones=0,
            dead_letters=0,
            transactions=0,
            value_bytes=0,
            already_landed=0,
            tables=["shop__events"],
        )


def _normalised(statements: tuple[str, ...]) -> list[str]:
    """A recording as the golden file keeps it: whitespace runs made one space."""
    return [re.sub(r"\s+", " ", statement).strip() for statement in statements]


def _record(tmp_path: Path) -> tuple[Builder, dict[str, list[str]], list]:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("golden.json"))
    path = tmp_path / "contract.duckdb"  # the database name dbt writes into every relation
    settings = PipelineSettings(home=tmp_path, warehouse_path=path, dbt_project_dir=project, run_replay=True)
    builder = Builder(settings)

    def connection() -> duckdb.DuckDBPyConnection:
        return connect(path, settings)

    results = []
    _land(path, 1, [(1, "10.00"), (2, "20.00"), (3, "30.00")])
    results.append(builder.build(connection))  # the first build: everything, through dbt
    for batch in (2, 3):  # recorded, then confirmed
        _land(path, batch, [(batch, f"{batch}.50"), (10 + batch, "1.00")])
        results.append(builder.build(connection, tests=False))
        results.append(builder.test(connection))
    recorded = {
        builder.project.node(uid).name: _normalised(statements)
        for uid, statements in builder.recordings.statements.items()
    }
    return builder, recorded, results


def test_the_recording_of_a_fixed_model_is_the_golden_one(tmp_path):
    builder, recorded, results = _record(tmp_path)
    assert all(result.success for result in results), [result.failures for result in results]
    assert not any(result.replayed for result in results)
    installed = {"dbt-core": version("dbt-core"), "dbt-duckdb": version("dbt-duckdb")}
    if os.environ.get("MIRADOR_RECORD_GOLDEN"):
        GOLDEN.write_text(json.dumps({"recorded_with": installed, "nodes": recorded}, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    differences = [
        line
        for name in sorted(set(golden["nodes"]) | set(recorded))
        for line in difflib.unified_diff(
            golden["nodes"].get(name, []),
            recorded.get(name, ["(not recorded: the replay would leave it to dbt)"]),
            f"{name}, recorded with {golden['recorded_with']}",
            f"{name}, recorded now with {installed}",
            lineterm="",
        )
    ]
    assert not differences, (
        "dbt now executes other SQL for the fixed model than the golden recording holds; check that the replay's "
        "normalisation (warehouse/build/recordings.py) still holds for it, then record it again "
        "(MIRADOR_RECORD_GOLDEN=1):\n" + "\n".join(differences)
    )
    confirmed = {builder.project.node(uid).name for uid in builder.recordings.confirmed}
    assert confirmed == set(NODES), "two dbt runs of the same SQL disagreed"

    # Confirmed: the next build and tests replay it, and the model holds what dbt would have built.
    path = tmp_path / "contract.duckdb"
    settings = builder.settings
    _land(path, 4, [(1, "11.00"), (4, "40.00")])
    built = builder.build(lambda: connect(path, settings), tests=False)
    tested = builder.test(lambda: connect(path, settings))
    assert built.success and built.replayed and tested.success and tested.replayed, (built, tested)
    with duckdb.connect(str(path), read_only=True) as conn:
        assert conn.execute(
            "select account_id, amount::varchar, _batch_id, _built_batch from balances order by 1"
        ).fetchall() == [
            (1, "11.00", 4, 4),
            (2, "2.50", 2, 2),
            (3, "3.50", 3, 3),
            (4, "40.00", 4, 4),
            (12, "1.00", 2, 2),
            (13, "1.00", 3, 3),
        ]
