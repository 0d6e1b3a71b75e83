"""The raw changelog tables: their names, metadata columns, and how their columns may evolve.

A source table `<service>.<schema>.<table>` lands in `raw.<service>__<table>` (`public` schema) or
`raw.<service>__<schema>__<table>`. Its columns are the loader's metadata columns (`_op` ...) then
the source's columns in the order they first appeared. Source columns only ever widen: a new column
is added, a widened type widens the raw column, a dropped one stays and is NULL from then on, and a
change no raw type can hold exactly is refused (`IncompatibleSchema`), which sends the message to
the dead letters.
"""

from __future__ import annotations

import re

from warehouse.ingest.connect_types import MAX_DECIMAL_PRECISION, ColumnType
from warehouse.ingest.exceptions import IncompatibleSchema

RAW_SCHEMA = "raw"

METADATA: list[tuple[str, str, str]] = [
    ("_op", "VARCHAR", "Debezium operation: c insert, u update, d delete, r snapshot read, t truncate."),
    ("_deleted", "BOOLEAN", "True for a delete; its row holds only the key columns (replica identity)."),
    ("_snapshot", "BOOLEAN", "True for rows read by the connector's snapshot rather than from the WAL."),
    ("_lsn", "BIGINT", "Source LSN of the change (`source.lsn`); orders changes of one service."),
    ("_seq", "VARCHAR", "Debezium `source.sequence`, [last commit LSN, event LSN] as JSON text."),
    ("_txid", "BIGINT", "Postgres transaction id (`source.txId`)."),
    ("_commit_ts", "TIMESTAMP WITH TIME ZONE", "Source commit time (`source.ts_us`); read time for snapshots."),
    (
        "_unavailable",
        "VARCHAR[]",
        "Columns whose value Debezium did not send (unchanged TOAST); they are NULL "
        "here and staging carries the previous value forward. NULL when none.",
    ),
    (
        "_old_key",
        "JSON",
        "For the create half of a primary-key change: the row's previous key "
        "(`__debezium.oldkey` header), so staging can follow the row.",
    ),
    ("_topic", "VARCHAR", "Kafka topic the event was read from."),
    ("_partition", "INTEGER", "Kafka partition."),
    ("_offset", "BIGINT", "Kafka offset; (_topic, _partition, _offset) is unique in raw."),
    ("_batch_id", "BIGINT", "Loader batch that landed the row (`loader.batches`)."),
    ("_loaded_at", "TIMESTAMP WITH TIME ZONE", "When that batch was committed to DuckDB."),
]
METADATA_NAMES = frozenset(name for name, _, _ in METADATA)

_UNSAFE = re.compile(r"[^0-9A-Za-z_]")


def raw_table_name(topic: str) -> str:
    """`orders.public.order_lines` -> `orders__order_lines`; other schemas keep their name in the middle."""
    parts = topic.split(".")
    if len(parts) < 3:
        raise ValueError(f"{topic!r} is not a `<service>.<schema>.<table>` change topic")
    service, schema, table = ".".join(parts[:-2]), parts[-2], parts[-1]
    name = f"{service}__{table}" if schema == "public" else f"{service}__{schema}__{table}"
    return _UNSAFE.sub("_", name)


def service_of(topic: str) -> str:
    """The service (the connector's topic prefix) a change, transaction or heartbeat topic belongs to."""
    if topic.startswith("__debezium-heartbeat."):
        return topic.removeprefix("__debezium-heartbeat.")
    return topic.split(".", 1)[0]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# -- Widening ---------------------------------------------------------------------------------------

_INTEGERS = {"TINYINT": 3, "SMALLINT": 5, "INTEGER": 10, "BIGINT": 19, "HUGEINT": 38}
"""Decimal digits each integer type holds in full."""
_DECIMAL = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")


def _as_decimal(duckdb_type: str) -> tuple[int, int] | None:
    if duckdb_type in _INTEGERS:
        return _INTEGERS[duckdb_type], 0
    if match := _DECIMAL.match(duckdb_type):
        return int(match[1]), int(match[2])
    return None


def supertype(old: str, new: ColumnType | str, new_kind: str = "") -> str | None:
    """The narrowest DuckDB type holding every value of both, exactly; None when there is none."""
    new_type = new.duckdb if isinstance(new, ColumnType) else new
    new_kind = new.kind if isinstance(new, ColumnType) else new_kind
    if old == new_type:
        return old
    if old.endswith("[]") and new_type.endswith("[]"):
        inner = supertype(old[:-2], new_type[:-2], new_kind)
        return inner and inner + "[]"
    if old in _INTEGERS and new_type in _INTEGERS:
        return max(old, new_type, key=_INTEGERS.__getitem__)
    floats = {"FLOAT", "DOUBLE"}
    if {old, new_type} <= floats | {"TINYINT", "SMALLINT", "INTEGER"} and {old, new_type} & floats:
        return "DOUBLE"
    old_dec, new_dec = _as_decimal(old), _as_decimal(new_type)
    if old_dec and new_dec:
        scale = max(old_dec[1], new_dec[1])
        digits = max(old_dec[0] - old_dec[1], new_dec[0] - new_dec[1])
        return f"DECIMAL({digits + scale},{scale})" if digits + scale <= MAX_DECIMAL_PRECISION else None
    if old_dec and new_kind == "numeric_text":
        return "VARCHAR"  # numeric(p,s) became unbounded numeric: exact text holds both
    if old == "VARCHAR" and (new_dec or new_type == "JSON"):
        return "VARCHAR"  # values of the narrower source type still fit the text column exactly
    if _DECIMAL.match(old) and new_type == "VARCHAR":
        return "VARCHAR"  # a decimal's text is exact (a numeric column that received a NaN or infinity)
    if old == "JSON" and new_type == "VARCHAR":
        return "VARCHAR"
    if (old, new_type) in {("DATE", "TIMESTAMP"), ("TIMESTAMP", "TIMESTAMP_NS"), ("DATE", "TIMESTAMP_NS")}:
        return new_type
    if (new_type, old) in {("DATE", "TIMESTAMP"), ("TIMESTAMP", "TIMESTAMP_NS"), ("DATE", "TIMESTAMP_NS")}:
        return old
    return None


class Catalog:
    """What each raw table's source columns are (or are about to become): name -> DuckDB type."""

    def __init__(self, tables: dict[str, dict[str, str]] | None = None) -> None:
        self.tables: dict[str, dict[str, str]] = tables or {}

    def admit(self, table: str, columns: list[tuple[str, ColumnType]]) -> None:
        """Widen `table` to take rows of this schema, or raise `IncompatibleSchema` and change nothing."""
        current = self.tables.get(table, {})
        wanted = dict(current)
        for name, column in columns:
            if name in METADATA_NAMES:
                raise IncompatibleSchema(f"source column {name!r} of {table} collides with a loader metadata column")
            if name not in current:
                wanted[name] = column.duckdb
                continue
            widened = supertype(current[name], column)
            if widened is None:
                raise IncompatibleSchema(
                    f"column {name!r} of raw.{table} is {current[name]}, the source now sends "
                    f"{column.duckdb}: no type holds both exactly"
                )
            wanted[name] = widened
        self.tables[table] = wanted
