"""Simulated services that write the loader's raw changelog, for property tests and benchmarks of the models.

`Changelog`, the orders service, keeps the source's true state (orders and their lines) and appends
to `raw.orders__orders` and `raw.orders__order_lines` what the loader lands for each change: the same
metadata columns (warehouse.ingest.catalog.METADATA) and batch bookkeeping (`loader.batches`), with creates,
updates (some with an unchanged TOASTed column), deletes, primary-key changes, truncates and
redeliveries. `StockSource`, the inventory service's stock streams, appends to
`raw.inventory__stock_events`, with redeliveries and events landing a batch late. `Service` is what
every simulated service shares (tests/dbt_project/services.py has the others, and all of them at once).
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import duckdb
import pyarrow as pa

from warehouse.ingest.catalog import METADATA
from warehouse.ledger import DDL as STATE_DDL

ORDER_COLUMNS = {
    "id": "UUID", "customer_id": "UUID", "currency": "VARCHAR", "status": "VARCHAR", "last_line_no": "INTEGER",
    "cancel_reason": "VARCHAR", "version": "INTEGER", "placed_at": "TIMESTAMP WITH TIME ZONE",
    "paid_at": "TIMESTAMP WITH TIME ZONE", "shipped_at": "TIMESTAMP WITH TIME ZONE",
    "cancelled_at": "TIMESTAMP WITH TIME ZONE", "updated_at": "TIMESTAMP WITH TIME ZONE",
}
LINE_COLUMNS = {"order_id": "UUID", "line_no": "INTEGER", "product_id": "UUID", "quantity": "INTEGER",
                "unit_price": "DECIMAL(12,2)"}
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
METADATA_TYPES = {name: kind for name, kind, _ in METADATA}


def _plain(value):
    """Values Arrow takes as they are: UUIDs as text (cast back in SQL)."""
    return str(value) if isinstance(value, uuid.UUID) else value


def land(conn: duckdb.DuckDBPyConnection, tables: dict[str, dict[str, str]], events: list[dict]) -> None:
    """Land `events` (each naming its `_table`, `<service>__<table>`) as one loader batch, as the loader
    would: the raw tables with the loader's metadata columns, and the batch in `loader.batches`."""
    conn.execute(STATE_DDL).fetchall()
    metadata = ", ".join(f'"{name}" {kind}' for name, kind, _ in METADATA)
    for table, columns in tables.items():
        source = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
        conn.execute(f"create table if not exists raw.{table} ({metadata}, {source})").fetchall()
    batch_id = conn.execute("select coalesce(max(batch_id), 0) + 1 from loader.batches").fetchall()[0][0]
    loaded_at = datetime.now(timezone.utc)
    landed = []
    for table, columns in tables.items():
        if not (rows := [e for e in events if e["_table"] == table]):
            continue
        kinds = METADATA_TYPES | columns
        service, name = table.split("__", 1)
        fixed = {"_batch_id": batch_id, "_loaded_at": loaded_at, "_topic": f"{service}.public.{name}",
                 "_partition": 0}
        frame = pa.table({n: pa.array([fixed[n] if n in fixed else _plain(e.get(n)) for e in rows],
                                      type=pa.string() if kind == "UUID" else None) for n, kind in kinds.items()})
        conn.register("changelog_batch", frame)
        select = ", ".join(f"cast({n} as {kind})" for n, kind in kinds.items())
        conn.execute(f"insert into raw.{table} ({', '.join(kinds)}) select {select} from changelog_batch").fetchall()
        conn.unregister("changelog_batch")
        landed.append(table)
    conn.execute("insert into loader.batches (batch_id, committed_at, messages, events, tables) "
                 "values (?, ?, ?, ?, ?)", [batch_id, loaded_at, len(events), len(events), sorted(landed)])


class Service:
    """A service's source tables, and the change events Debezium sends for them, pending until the
    loader lands them. Subclasses name their tables and issue the commands."""

    TABLES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {}
    """Raw table (`<service>__<table>`) -> its columns and types, and its primary key."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lsn = 1000
        self.pending: list[dict] = []
        self.emitted: deque[dict] = deque(maxlen=50)
        """The last events sent, which a redelivery picks from."""
        self.offsets = dict.fromkeys(self.TABLES, 0)

    @property
    def tables(self) -> dict[str, dict[str, str]]:
        return {table: columns for table, (columns, _) in self.TABLES.items()}

    def redeliver(self) -> None:
        """A connector restart re-sends events it had already sent: same LSN and values, new offset."""
        if self.emitted:
            event = dict(self.rng.choice(self.emitted))
            event["_offset"] = self._offset(event["_table"])
            self.pending.append(event)

    # -- what the loader lands --------------------------------------------------------------------
    def take(self) -> list[dict]:
        """The events the next loader batch lands."""
        events, self.pending = self.pending, []
        return events

    def flush(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Land the pending events as one loader batch."""
        land(conn, self.tables, self.take())

    def _emit(self, table: str, op: str, row: dict | None, unavailable: list[str] | None = None,
              same_lsn: bool = False) -> None:
        if not same_lsn:
            self.lsn += self.rng.randrange(8, 400)
        columns, keys = self.TABLES[table]
        event = {"_table": table, "_op": op, "_deleted": op == "d", "_snapshot": False, "_lsn": self.lsn,
                 "_seq": f'["{self.lsn - 8}","{self.lsn}"]', "_txid": self.lsn // 8,
                 "_commit_ts": EPOCH + timedelta(microseconds=self.lsn), "_offset": self._offset(table),
                 "_unavailable": unavailable}
        if row is not None:
            # A delete carries only the key columns (default replica identity).
            event |= {c: row[c] for c in (keys if op == "d" else columns)}
            for column in unavailable or []:
                event[column] = None
        self.pending.append(event)
        if op != "t":
            self.emitted.append(event)

    def _offset(self, table: str) -> int:
        self.offsets[table] += 1
        return self.offsets[table]

    def _now(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.lsn)


class Changelog(Service):
    """The orders service: orders and their lines."""

    TABLES = {"orders__orders": (ORDER_COLUMNS, ("id",)),
              "orders__order_lines": (LINE_COLUMNS, ("order_id", "line_no"))}

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.orders: dict[uuid.UUID, dict] = {}
        self.lines: dict[tuple[uuid.UUID, int], dict] = {}

    # -- what the source does ---------------------------------------------------------------------
    def step(self, truncates: bool = True) -> None:
        """One random command against the source (`truncates=False`: never a truncate)."""
        choices = ["create", "create", "update", "update", "toast_update", "delete", "key_change",
                   "add_line", "add_line", "update_line", "delete_line", "redeliver", "truncate_lines"]
        weights = [4, 4, 4, 4, 3, 2, 1, 5, 5, 3, 2, 2, 0.3 if truncates else 0]
        getattr(self, self.rng.choices(choices, weights)[0])()

    def create(self, order_id: uuid.UUID | None = None) -> None:
        order_id = order_id or uuid.UUID(int=self.rng.getrandbits(128))
        row = {"id": order_id, "customer_id": uuid.UUID(int=self.rng.randrange(50)), "currency": "EUR",
               "status": "placed", "last_line_no": 0, "cancel_reason": None, "version": 1,
               "placed_at": self._now(), "paid_at": None, "shipped_at": None, "cancelled_at": None,
               "updated_at": self._now()}
        self.orders[order_id] = row
        self._emit("orders__orders", "c", row)

    def update(self, toast: bool = False) -> None:
        if not self.orders:
            return self.create()
        row = self.orders[self.rng.choice(list(self.orders))]
        row.update(status=self.rng.choice(["placed", "paid", "shipped", "cancelled"]), version=row["version"] + 1,
                   updated_at=self._now())
        if not toast:
            row["cancel_reason"] = self.rng.choice([None, "changed mind", "x" * self.rng.randrange(1, 40)])
        self._emit("orders__orders", "u", row, unavailable=["cancel_reason"] if toast else None)

    def toast_update(self) -> None:
        self.update(toast=True)

    def delete(self) -> None:
        if not self.orders:
            return
        order_id = self.rng.choice(list(self.orders))
        for key in [k for k in self.lines if k[0] == order_id]:
            self._emit("orders__order_lines", "d", self.lines.pop(key))
        self._emit("orders__orders", "d", self.orders.pop(order_id))

    def key_change(self) -> None:
        """An UPDATE of the primary key: Debezium sends a delete of the old key and a create of the new."""
        with_lines = {line[0] for line in self.lines}
        candidates = [k for k in self.orders if k not in with_lines]
        if not candidates:
            return
        old = candidates[0]
        row = self.orders.pop(old)
        self._emit("orders__orders", "d", row, same_lsn=False)
        row = dict(row, id=uuid.UUID(int=self.rng.getrandbits(128)), version=row["version"] + 1)
        self.orders[row["id"]] = row
        self._emit("orders__orders", "c", row, same_lsn=True)

    @property
    def last_order(self) -> dict:
        return self.orders[next(reversed(self.orders))]

    def add_line(self) -> None:
        if not self.orders:
            return self.create()
        self.add_line_to(self.orders[self.rng.choice(list(self.orders))])

    def add_line_to(self, order: dict) -> None:
        order["last_line_no"] += 1
        row = {"order_id": order["id"], "line_no": order["last_line_no"], "product_id": uuid.UUID(int=self.rng.randrange(20)),
               "quantity": self.rng.randrange(1, 10), "unit_price": Decimal(self.rng.randrange(1, 100000)) / 100}
        self.lines[(row["order_id"], row["line_no"])] = row
        self._emit("orders__order_lines", "c", row)

    def update_line(self) -> None:
        if not self.lines:
            return self.add_line()
        row = self.lines[self.rng.choice(list(self.lines))]
        row["quantity"] = self.rng.randrange(1, 10)
        self._emit("orders__order_lines", "u", row)

    def delete_line(self) -> None:
        if self.lines:
            self._emit("orders__order_lines", "d", self.lines.pop(self.rng.choice(list(self.lines))))

    def truncate_lines(self) -> None:
        self.lines.clear()
        self._emit("orders__order_lines", "t", None)


STOCK_COLUMNS = {"stream": "UUID", "version": "INTEGER", "event_type": "VARCHAR", "quantity": "INTEGER",
                 "reason": "VARCHAR", "command_id": "VARCHAR", "occurred_at": "TIMESTAMP WITH TIME ZONE",
                 "schema_version": "SMALLINT"}
STOCK_TABLE = "inventory__stock_events"


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
        self.emitted: deque[dict] = deque(maxlen=30)
        """The last events sent, which a redelivery picks from."""

    def step(self) -> None:
        sent = [event for event in self.emitted if not event.get("late")]
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
        event = {"_table": STOCK_TABLE, "stream": product, "version": self.versions[product],
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

    @property
    def tables(self) -> dict[str, dict[str, str]]:
        return {STOCK_TABLE: STOCK_COLUMNS}

    def take(self) -> list[dict]:
        """The events the next loader batch lands; the late ones go with the batch after it."""
        events = self.pending
        for event in self.late:
            event["late"] = False  # sent with the next batch
        self.pending, self.late = self.late, []
        return events

    def flush(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Land the pending events as one loader batch."""
        land(conn, self.tables, self.take())

    def _next_offset(self) -> int:
        self.offset += 1
        return self.offset

