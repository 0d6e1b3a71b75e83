"""The stock event stream, built incrementally batch by batch, gives exactly the full-refresh result.

`stock_movements` appends: new movements carry on from the balance it holds for a product's last one,
and an event landing after a later one of its stream makes it recompute that stream whole.
"""

from __future__ import annotations

import random
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from warehouse.catalog import METADATA
from warehouse.land import STATE_DDL

from .test_incremental import _build, _table

SOURCE = {"stream": "UUID", "version": "INTEGER", "event_type": "VARCHAR", "quantity": "INTEGER",
          "reason": "VARCHAR", "command_id": "VARCHAR", "occurred_at": "TIMESTAMP WITH TIME ZONE",
          "schema_version": "SMALLINT"}
TABLE = "raw.inventory__stock_events"
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


class StockSource:
    """Products' stock streams as the inventory service appends them, and what the loader lands."""

    def __init__(self, rng: random.Random, products: int = 6) -> None:
        self.rng = rng
        self.products = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(products)]
        self.versions = dict.fromkeys(self.products, 0)
        self.stock = dict.fromkeys(self.products, 0)
        self.lsn, self.offset = 1000, 0
        self.pending: list[dict] = []
        self.late: list[dict] = []
        self.deferred = 0
        self.emitted: list[dict] = []

    def step(self) -> None:
        sent = [event for event in self.emitted[-30:] if not event.get("late")]
        if sent and self.rng.random() < 0.15:
            # A connector restart re-sends an event: same LSN and values, a new offset.
            self.pending.append(dict(self.rng.choice(sent), _offset=self._next_offset()))
            return
        product = self.rng.choice(self.products)
        quantity = self.rng.randrange(1, 20)
        increase = self.stock[product] < quantity or self.rng.random() < 0.5
        self.stock[product] += quantity if increase else -quantity
        self.versions[product] += 1
        self.lsn += self.rng.randrange(8, 400)
        event = {"stream": str(product), "version": self.versions[product],
                 "event_type": "StockIncreased" if increase else "StockDecreased", "quantity": quantity,
                 "reason": "test", "command_id": uuid.uuid4().hex,
                 "occurred_at": EPOCH + timedelta(microseconds=self.lsn), "schema_version": 1,
                 "_op": "c", "_deleted": False, "_snapshot": False, "_lsn": self.lsn,
                 "_seq": f'["{self.lsn - 8}","{self.lsn}"]', "_txid": self.lsn // 8,
                 "_commit_ts": EPOCH + timedelta(microseconds=self.lsn), "_offset": self._next_offset()}
        # Now and then an event reaches the warehouse a batch after a later one of its stream: the
        # stream is then recomputed whole. Only decreases, so that no balance shows below zero meanwhile.
        event["late"] = not increase and self.rng.random() < 0.15
        self.deferred += event["late"]
        (self.late if event["late"] else self.pending).append(event)
        self.emitted.append(event)

    def flush(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Land the pending events as one loader batch."""
        conn.execute(STATE_DDL).fetchall()
        metadata = ", ".join(f'"{name}" {kind}' for name, kind, _ in METADATA)
        source = ", ".join(f'"{name}" {kind}' for name, kind in SOURCE.items())
        conn.execute(f"create table if not exists {TABLE} ({metadata}, {source})").fetchall()
        batch_id = conn.execute("select coalesce(max(batch_id), 0) + 1 from loader.batches").fetchall()[0][0]
        loaded_at = datetime.now(timezone.utc)
        fixed = {"_batch_id": batch_id, "_loaded_at": loaded_at, "_topic": "inventory.public.stock_events",
                 "_partition": 0, "_unavailable": None}
        names = [name for name, _, _ in METADATA] + list(SOURCE)
        kinds = {name: kind for name, kind, _ in METADATA} | SOURCE
        frame = pa.table({n: pa.array([fixed[n] if n in fixed else e.get(n) for e in self.pending],
                                      type=pa.string() if n == "stream" else None) for n in names})
        conn.register("stock_batch", frame)
        select = ", ".join(f"cast({n} as {kinds[n]})" for n in names)
        conn.execute(f"insert into {TABLE} ({', '.join(names)}) select {select} from stock_batch").fetchall()
        conn.unregister("stock_batch")
        conn.execute("insert into loader.batches (batch_id, committed_at, messages, events, tables) "
                     "values (?, ?, ?, ?, ?)", [batch_id, loaded_at, len(self.pending), len(self.pending),
                                                [TABLE.split(".")[1]]])
        for event in self.late:
            event["late"] = False  # sent with the next batch
        self.pending, self.late = self.late, []

    def _next_offset(self) -> int:
        self.offset += 1
        return self.offset


@pytest.mark.parametrize("seed", [1, 2])
def test_stock_movements_append_and_equal_a_full_refresh(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    source = StockSource(rng)
    built = tmp_path / "incremental" / "warehouse.duckdb"
    built.parent.mkdir()
    for batch in range(12):
        for _ in range(rng.randrange(1, 25) if batch < 11 else 0):  # the last batch lands the late ones
            source.step()
        with duckdb.connect(str(built)) as conn:
            source.flush(conn)
        _build(built, tests=rng.random() < 0.3)
    assert not source.late and source.deferred, "the seed lands no event late: pick another"

    full = tmp_path / "full" / "warehouse.duckdb"
    full.parent.mkdir()
    shutil.copy(built, full)
    _build(full, full_refresh=True)
    with duckdb.connect(str(built), read_only=True) as a, duckdb.connect(str(full), read_only=True) as b:
        assert _table(a, "stg_inventory__stock_events", "staging") == _table(b, "stg_inventory__stock_events",
                                                                             "staging")
        assert _table(a, "stock_movements", "marts") == _table(b, "stock_movements", "marts")
        # And the last balance of each stream is the source's stock.
        last = dict(a.execute("select product_id, arg_max(balance_after, version) from marts.stock_movements "
                              "group by product_id").fetchall())
    assert last == {product: stock for product, stock in source.stock.items() if source.versions[product]}
