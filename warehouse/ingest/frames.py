"""Decoded groups as Arrow tables: the one hand-off from Python objects to DuckDB.

One Arrow column per source column and per metadata field that varies by row; what is constant
for a group (topic, batch id, load time) is added by the landing SQL, not repeated here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.ingest.catalog import service_of
from warehouse.ingest.connect_types import has_numeric_special
from warehouse.ingest.decode import Batch, DeadLetter, Group, Transaction, offset_span

log = logging.getLogger(__name__)

UTC_MICROS = pa.timestamp("us", tz="UTC")


@dataclass
class Frame:
    """One group's rows, ready to insert into `raw.<table>`."""

    table: str
    topic: str
    service: str
    columns: list  # [(name, ColumnType)] of the group's schema
    key_columns: list[str] | None
    defaults: dict
    data: pa.Table
    max_lsn: int | None
    max_commit_us: int | None
    unmapped: dict[str, str] = field(default_factory=dict)
    """Columns of a type the loader cannot map (landing as JSON text) -> that type."""


ARROW_CHUNK = 5_000
"""Decoded events the loader turns into Arrow at a time (about 6 MB of objects). Measured per event:
2.2 us at 5,000, 3.2 us converting each 1,000-message fetch (per-array costs), 2.7 us at 20,000."""


def convert(batch: Batch, minimum: int = 1) -> None:
    """Turn every group's decoded payloads into an Arrow chunk and let go of the objects, once at
    least `minimum` events wait.

    A batch then holds about 300 bytes an event instead of about 1,150 of decoded objects, so
    batches can be large (fewer per-batch costs) in the same memory.
    """
    if sum(len(g.offsets) for g in batch.groups.values()) < minimum:
        return
    for group in batch.groups.values():
        if group.payloads:
            chunk = _chunk(group)
            group.chunks.append(chunk)
            group.rows += chunk.num_rows
            batch.held_bytes += chunk.nbytes
            group.payloads, group.partitions, group.offsets, group.old_keys = [], [], [], {}


def _chunk(group: Group) -> pa.RecordBatch:
    schema, payloads = group.schema, group.payloads
    sources = [p.source for p in payloads]
    empty = schema.empty_row
    rows = [p.after or p.before or empty for p in payloads]
    old_keys = [None] * len(payloads)
    for index, key in group.old_keys.items():
        old_keys[index] = key
    lsn = pa.array([s.lsn for s in sources], pa.int64())
    commit = pa.array([s.ts_us or s.ts_ms * 1000 for s in sources], pa.int64())
    group.max_lsn = greatest(group.max_lsn, pc.max(lsn).as_py())
    group.max_commit_us = greatest(group.max_commit_us, pc.max(commit).as_py())
    arrays = {
        "_op": pa.array([p.op for p in payloads], pa.string()),
        "_snapshot": pa.array([s.snapshot for s in sources], pa.string()),
        "_lsn": lsn,
        "_seq": pa.array([s.sequence for s in sources], pa.string()),
        "_txid": pa.array([s.txId for s in sources], pa.int64()),
        "_commit_ts": commit.cast(UTC_MICROS),
        "_old_key": pa.array(old_keys, pa.string()),
        "_partition": pa.array(group.partitions, pa.int32()),
        "_offset": pa.array(group.offsets, pa.int64()),
    }
    for (name, column), getter in zip(schema.columns, schema.getters):
        arrays[name] = column.to_arrow(list(map(getter, rows)))
    return pa.RecordBatch.from_pydict(arrays)


def greatest(a: int | None, b: int | None) -> int | None:
    """The larger of two positions, either of which may be unknown."""
    return b if a is None else a if b is None else max(a, b)


def group_frame(group: Group) -> Frame:
    schema = group.schema
    return Frame(
        schema.table,
        group.topic,
        service_of(group.topic),
        schema.columns,
        schema.key_columns,
        schema.defaults,
        pa.Table.from_batches(group.chunks),
        group.max_lsn,
        group.max_commit_us,
        dict(schema.unmapped),
    )


def numeric_specials_as_text(frames: list[Frame], catalog_tables: dict[str, dict[str, str]]) -> None:
    """A DECIMAL column that receives a NaN or an infinity becomes exact text, from this batch on.

    DuckDB's DECIMAL has no NaN or infinities; Postgres's numeric has. The raw column widens to
    VARCHAR (its DECIMAL values become their exact text) and the catalog remembers it, so every later
    batch lands the column as text as well.
    """
    for frame in frames:
        tables = catalog_tables.setdefault(frame.table, {})
        columns = []
        for name, column in frame.columns:
            if column.text is not None:
                if tables.get(name) != column.text.duckdb and has_numeric_special(frame.data[name]):
                    log.warning(
                        "raw.%s.%s: a NaN or infinity arrived; the column widens from %s to exact text (%s)",
                        frame.table,
                        name,
                        tables.get(name, column.duckdb),
                        column.text.duckdb,
                    )
                    tables[name] = column.text.duckdb
                if tables.get(name) == column.text.duckdb:
                    column = column.text
            columns.append((name, column))
        frame.columns = columns


def dead_letter_table(dead: list[DeadLetter]) -> pa.Table:
    return pa.table(
        {
            "topic": pa.array([d.topic for d in dead], pa.string()),
            "partition": pa.array([d.partition for d in dead], pa.int32()),
            "offset": pa.array([d.offset for d in dead], pa.int64()),
            "key": pa.array([d.key for d in dead], pa.binary()),
            "value": pa.array([d.value for d in dead], pa.binary()),
            "reason": pa.array([d.reason for d in dead], pa.string()),
            "stage": pa.array([d.stage for d in dead], pa.string()),
        }
    )


def transaction_table(transactions: list[Transaction]) -> pa.Table:
    def split(tx_id: str, part: int) -> int | None:
        pieces = tx_id.split(":")
        return int(pieces[part]) if len(pieces) == 2 and pieces[part].isdigit() else None

    return pa.table(
        {
            "service": pa.array([t.service for t in transactions], pa.string()),
            "status": pa.array([t.status for t in transactions], pa.string()),
            "id": pa.array([t.id for t in transactions], pa.string()),
            "txid": pa.array([split(t.id, 0) for t in transactions], pa.int64()),
            "lsn": pa.array([split(t.id, 1) for t in transactions], pa.int64()),
            "event_count": pa.array([t.event_count for t in transactions], pa.int64()),
            "data_collections": pa.array([t.data_collections for t in transactions], pa.string()),
            "commit_ts": pa.array([t.ts_ms * 1000 for t in transactions], pa.int64()).cast(UTC_MICROS),
            "topic": pa.array([t.topic for t in transactions], pa.string()),
            "partition": pa.array([t.partition for t in transactions], pa.int32()),
            "offset": pa.array([t.offset for t in transactions], pa.int64()),
        }
    )


@dataclass
class Work:
    """A decoded batch in Arrow form, with where it ends: what `land` commits in one transaction."""

    frames: list[Frame]
    desired: dict[str, dict[str, str]]
    dead: pa.Table | None
    transactions: pa.Table | None
    heartbeats: dict[str, int]
    positions: dict[tuple[str, int], int]
    first_offsets: dict[tuple[str, int], int]
    caught_up: set[str]
    messages: int
    tombstones: int
    value_bytes: int
    topics: set[str] = field(default_factory=set)
    """Every topic the loader reads, and of those, the ones with a partition not read to its end."""
    behind: set[str] = field(default_factory=set)

    @property
    def events(self) -> int:
        return sum(f.data.num_rows for f in self.frames)

    def span(self) -> dict[str, str]:
        """`topic[partition]` -> `first..last` offsets, for error messages."""
        return offset_span(self.first_offsets, self.positions)


def prepare(batch: Batch, catalog_tables: dict[str, dict[str, str]], caught_up: set[str]) -> Work:
    convert(batch)
    frames = [group_frame(g) for g in batch.groups.values()]
    numeric_specials_as_text(frames, catalog_tables)
    desired = {f.table: dict(catalog_tables.get(f.table, {})) for f in frames}
    return Work(
        frames,
        desired,
        dead_letter_table(batch.dead) if batch.dead else None,
        transaction_table(batch.transactions) if batch.transactions else None,
        dict(batch.heartbeats),
        dict(batch.positions),
        dict(batch.first_offsets),
        set(caught_up),
        batch.messages,
        batch.tombstones,
        batch.value_bytes,
    )
