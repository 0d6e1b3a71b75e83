"""An incremental snapshot's reads in staging: they land like any other change, but never over a newer one.

The positions are those Debezium 3.6 gave on the real stack (tests/cdc/test_resnapshot.py races it
there): a read has no `source.lsn` and carries its chunk's closing watermark in `source.sequence`
(`[S, S]`); an update and a delete whose transactions wrote before the chunk was read and committed
after it closed reach Kafka after the reads with an LSN below S, and a `sequence` whose first LSN (the
last commit before theirs) is above it.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from .changelog import STOCK_COLUMNS, STOCK_TABLE, land
from .services import CUSTOMER_COLUMNS
from .test_incremental import _build, _table, builder_for

TABLE = "customers__customers"
WATERMARK = 85157264
AT = datetime(2026, 12, 3, tzinfo=UTC)
STREAM = uuid.uuid4()


def _row(key: uuid.UUID, name: str) -> dict:
    return {
        "id": key,
        "email": f"{key}@example.com",
        "name": name,
        "country": "GB",
        "version": 1,
        "created_at": AT,
        "updated_at": AT,
    }


def _stock(version: int) -> dict:
    return {
        "stream": STREAM,
        "version": version,
        "event_type": "StockIncreased",
        "quantity": 5,
        "reason": "received",
        "command_id": f"command-{version}",
        "occurred_at": AT,
        "schema_version": 1,
    }


def _event(offset: int, op: str, row: dict, lsn: int | None, seq: tuple[int | None, int], table: str = TABLE) -> dict:
    first = "null" if seq[0] is None else f'"{seq[0]}"'
    columns = {"id": row["id"]} if op == "d" else row
    return {
        "_table": table,
        "_op": op,
        "_deleted": op == "d",
        "_snapshot": op == "r",
        "_lsn": lsn,
        "_seq": f'[{first},"{seq[1]}"]',
        "_commit_ts": AT,
        "_offset": offset,
        **columns,
    }


def test_reads_land_but_never_over_a_change_committed_after_their_chunk(tmp_path: Path) -> None:
    updated, deleted, repaired, recovered, earlier = (uuid.uuid4() for _ in range(5))
    streamed = [
        _event(1, "c", _row(updated, "before"), 85132584, (85132584, 85132584)),
        _event(2, "c", _row(deleted, "before"), 85147376, (85147376, 85147376)),
        _event(3, "c", _row(repaired, "missed an update"), 85147800, (85147700, 85147800)),
        _event(4, "c", _row(earlier, "before"), 85147900, (85147850, 85147900)),
        _event(1, "c", _stock(1), 85140000, (85139000, 85140000), STOCK_TABLE),
    ]
    resnapshot = [
        # committed before the chunk's window opened: older than the reads
        _event(5, "u", _row(earlier, "first"), 85150000, (85149000, 85150000)),
        *(
            _event(6 + n, "r", _row(key, name), None, (WATERMARK, WATERMARK))
            for n, (key, name) in enumerate(
                [
                    (updated, "before"),
                    (deleted, "before"),
                    (repaired, "as read"),
                    (recovered, "only read"),
                    (earlier, "first"),
                ]
            )
        ),
        # written before the reads, committed after the chunk closed
        _event(11, "u", _row(updated, "after"), 85153496, (85158568, 85153496)),
        _event(12, "d", _row(deleted, "before"), 85153664, (85159192, 85153664)),
        # the stock stream read again: the event it had stays as it was, one it never had arrives
        _event(2, "r", _stock(1), None, (WATERMARK, WATERMARK), STOCK_TABLE),
        _event(3, "r", _stock(2), None, (WATERMARK, WATERMARK), STOCK_TABLE),
    ]
    built = tmp_path / "incremental" / "warehouse.duckdb"
    built.parent.mkdir()
    builder = builder_for(built)
    tables = {TABLE: CUSTOMER_COLUMNS, STOCK_TABLE: STOCK_COLUMNS}
    for batch in (streamed, resnapshot):
        with duckdb.connect(str(built)) as conn:
            land(conn, tables, batch)
        _build(built, tests=False, builder=builder)

    with duckdb.connect(str(built), read_only=True) as conn:
        staged = {
            key: (name, is_deleted, lsn)
            for key, name, is_deleted, lsn in conn.execute(
                "select customer_id, customer_name, _deleted, _lsn from staging.stg_customers__customers"
            ).fetchall()
        }
        events = conn.execute(
            "select version, _lsn, _batch_id from staging.stg_inventory__stock_events order by version"
        ).fetchall()
    assert events == [(1, 85140000, 1), (2, WATERMARK, 2)]
    assert staged == {
        updated: ("after", False, WATERMARK),
        deleted: ("before", True, WATERMARK),
        repaired: ("as read", False, WATERMARK),
        recovered: ("only read", False, WATERMARK),
        earlier: ("first", False, WATERMARK),
    }

    full = tmp_path / "full" / "warehouse.duckdb"
    full.parent.mkdir()
    shutil.copy(built, full)
    _build(full, full_refresh=True, tests=False)
    with duckdb.connect(str(built), read_only=True) as a, duckdb.connect(str(full), read_only=True) as b:
        for model in ("stg_customers__customers", "stg_inventory__stock_events"):
            assert _table(a, model, "staging") == _table(b, model, "staging")
