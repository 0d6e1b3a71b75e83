"""Kafka Connect and Debezium field schemas mapped to DuckDB columns, with exact values.

Each field of a change event's row becomes a `ColumnType`: the msgspec type its JSON decodes to
(the typed fast path, no per-value Python objects beyond what msgspec makes), the Arrow type it is
batched in, and the SQL expression that turns the Arrow column into the DuckDB value where DuckDB
does that faster and exactly (UUID, JSON, zoned timestamps, durations). Decimals never go through a
float: their unscaled big-endian bytes become Arrow decimals, or exact text when DuckDB's 38 digits
are not enough.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa

from warehouse.ingest.exceptions import PoisonMessage, UnsupportedType

PLACEHOLDER = "__debezium_unavailable_value"
"""What Debezium sends for an unchanged TOASTed value (`unavailable.value.placeholder`)."""

MAX_DECIMAL_PRECISION = 38


class VariableDecimal(msgspec.Struct, gc=False):
    """`io.debezium.data.VariableScaleDecimal`: numeric without a declared scale."""

    scale: int
    value: bytes


@dataclass(frozen=True)
class ColumnType:
    duckdb: str
    """DuckDB type of the raw column, spelled as `duckdb_columns()` reports it."""
    spec: Any
    """msgspec type one JSON value decodes to, `None` excluded."""
    arrow: pa.DataType
    """Arrow type of the landing batch's column."""
    sql: str = "{c}"
    """Expression from the Arrow column `{c}` to the DuckDB value."""
    convert: Callable[[list], list | pa.Array] | None = None
    """Python-side conversion of a column's decoded values, for what Arrow cannot take as is."""
    toast: str | None = None
    """SQL literal of Debezium's TOAST placeholder as this column arrives in Arrow, if it can be TOASTed."""
    kind: str = field(default="", compare=False)
    """`numeric_text` for exact decimal text; lets a DECIMAL column widen to it."""

    def to_arrow(self, values: list) -> pa.Array:
        converted = self.convert(values) if self.convert else values
        return converted if isinstance(converted, pa.Array) else pa.array(converted, type=self.arrow)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _java_name_uuid(data: bytes) -> str:
    """Java's `UUID.nameUUIDFromBytes`: what Debezium puts in an unchanged TOASTed uuid[]."""
    digest = bytearray(hashlib.md5(data).digest())  # Java's UUID v3, not a security hash
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


_STRING_TOAST = _sql_text(PLACEHOLDER)
_BLOB_TOAST = f"{_STRING_TOAST}::BLOB"
_UUID_TOAST = _sql_text(_java_name_uuid(PLACEHOLDER.encode()))


# -- Conversions ------------------------------------------------------------------------------------


def _unscaled(values: list) -> list:
    return [None if v is None else int.from_bytes(v, "big", signed=True) for v in values]


def _decimal_converter(precision: int, scale: int) -> Callable[[list], pa.Array]:
    """Unscaled two's-complement bytes to an Arrow decimal: the integer, reinterpreted at the scale."""
    target = pa.decimal128(precision, scale)

    def convert(values: list) -> pa.Array:
        unscaled = _unscaled(values)
        if precision <= 18:
            array = pa.array(unscaled, pa.int64()).cast(pa.decimal128(19, 0))
            return array.view(pa.decimal128(19, scale)).cast(target)
        return (
            pa.array(unscaled, pa.decimal128(MAX_DECIMAL_PRECISION, 0))
            .view(pa.decimal128(MAX_DECIMAL_PRECISION, scale))
            .cast(target)
        )

    return convert


def decimal_text(unscaled: int, scale: int) -> str:
    """Exact decimal text of `unscaled * 10**-scale`, trailing zeros kept as Postgres prints them."""
    if scale <= 0:
        return str(unscaled * 10**-scale)
    digits = str(abs(unscaled)).rjust(scale + 1, "0")
    return ("-" if unscaled < 0 else "") + digits[:-scale] + "." + digits[-scale:]


def _decimal_text_converter(scale: int) -> Callable[[list], list]:
    def convert(values: list) -> list:
        return [None if u is None else decimal_text(u, scale) for u in _unscaled(values)]

    return convert


def _variable_decimal_text(values: list) -> list:
    return [None if v is None else decimal_text(int.from_bytes(v.value, "big", signed=True), v.scale) for v in values]


_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _floats(values: list) -> list:
    """JSON has no NaN or infinities; the Connect converter sends them as strings."""
    if not any(type(v) is str for v in values):
        return values
    return [_SPECIAL_FLOATS[v] if type(v) is str else v for v in values]


_ISO_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<y>-?\d+)Y)?(?:(?P<mo>-?\d+)M)?(?:(?P<d>-?\d+)D)?"
    r"(?:T(?:(?P<h>-?\d+)H)?(?:(?P<mi>-?\d+)M)?(?:(?P<s>-?\d+(?:\.\d+)?)S)?)?$"
)


def iso_interval(text: str) -> tuple[int, int, int]:
    """`io.debezium.time.Interval` text (`P1Y2M3DT4H5M6.78S`) as Arrow's (months, days, nanoseconds)."""
    match = _ISO_DURATION.match(text)
    if not match:
        raise PoisonMessage(f"not an ISO 8601 interval: {text!r}")
    part = {k: v or "0" for k, v in match.groupdict().items()}
    seconds_text = part["s"]
    negative_seconds = seconds_text.startswith("-")
    whole, _, fraction = seconds_text.lstrip("-").partition(".")
    nanos = int(whole) * 10**9 + int((fraction + "000000000")[:9])
    nanos = -nanos if negative_seconds else nanos
    nanos += (int(part["h"]) * 3600 + int(part["mi"]) * 60) * 10**9
    months, days = int(part["y"]) * 12 + int(part["mo"]), int(part["d"])
    sign = -1 if match.group("sign") else 1
    return sign * months, sign * days, sign * nanos


def _intervals(values: list) -> list:
    return [None if v is None else iso_interval(v) for v in values]


# -- The mapping --------------------------------------------------------------------------------------

_PRIMITIVES: dict[str, ColumnType] = {
    "int8": ColumnType("TINYINT", int, pa.int8()),
    "int16": ColumnType("SMALLINT", int, pa.int16()),
    "int32": ColumnType("INTEGER", int, pa.int32()),
    "int64": ColumnType("BIGINT", int, pa.int64()),
    "float32": ColumnType("FLOAT", float | str, pa.float32(), convert=_floats),
    "float64": ColumnType("DOUBLE", float | str, pa.float64(), convert=_floats),
    "boolean": ColumnType("BOOLEAN", bool, pa.bool_()),
    "string": ColumnType("VARCHAR", str, pa.string(), toast=_STRING_TOAST),
    "bytes": ColumnType("BLOB", bytes, pa.binary(), toast=_BLOB_TOAST),
}

_TEXT = _PRIMITIVES["string"]

_LOGICAL: dict[str, ColumnType] = {
    # dates and times: integers since the epoch or midnight, in the unit the name says
    "org.apache.kafka.connect.data.Date": ColumnType("DATE", int, pa.date32()),
    "io.debezium.time.Date": ColumnType("DATE", int, pa.date32()),
    "org.apache.kafka.connect.data.Time": ColumnType("TIME", int, pa.time32("ms")),
    "io.debezium.time.Time": ColumnType("TIME", int, pa.time32("ms")),
    "io.debezium.time.MicroTime": ColumnType("TIME", int, pa.time64("us")),
    "io.debezium.time.NanoTime": ColumnType("TIME", int, pa.time64("ns")),
    "org.apache.kafka.connect.data.Timestamp": ColumnType("TIMESTAMP", int, pa.timestamp("ms")),
    "io.debezium.time.Timestamp": ColumnType("TIMESTAMP", int, pa.timestamp("ms")),
    "io.debezium.time.MicroTimestamp": ColumnType("TIMESTAMP", int, pa.timestamp("us")),
    "io.debezium.time.NanoTimestamp": ColumnType("TIMESTAMP_NS", int, pa.timestamp("ns")),
    "io.debezium.time.ZonedTimestamp": ColumnType(
        "TIMESTAMP WITH TIME ZONE", str, pa.string(), sql="CAST({c} AS TIMESTAMPTZ)"
    ),
    "io.debezium.time.ZonedTime": ColumnType("TIME WITH TIME ZONE", str, pa.string(), sql="CAST({c} AS TIMETZ)"),
    "io.debezium.time.Year": ColumnType("INTEGER", int, pa.int32()),
    # Debezium folds months into microseconds at 30.4375 days (interval.handling.mode=numeric)
    "io.debezium.time.MicroDuration": ColumnType("INTERVAL", int, pa.int64(), sql="to_microseconds({c})"),
    "io.debezium.time.Interval": ColumnType("INTERVAL", str, pa.month_day_nano_interval(), convert=_intervals),
    # text with a meaning
    "io.debezium.data.Json": ColumnType("JSON", str, pa.string(), sql="CAST({c} AS JSON)", toast=_STRING_TOAST),
    "io.debezium.data.Uuid": ColumnType("UUID", str, pa.string(), sql="CAST({c} AS UUID)"),
    "io.debezium.data.Enum": _TEXT,
    "io.debezium.data.EnumSet": _TEXT,
    "io.debezium.data.Xml": _TEXT,
    "io.debezium.data.Ltree": _TEXT,
    "io.debezium.data.Bits": _PRIMITIVES["bytes"],
    "io.debezium.data.VariableScaleDecimal": ColumnType(
        "VARCHAR", VariableDecimal, pa.string(), convert=_variable_decimal_text, kind="numeric_text"
    ),
}


JSON_TYPE_NAMES = {"float": "float32", "double": "float64"}
"""The JsonConverter's names of Connect types whose `Schema.Type` name differs."""


def connect_type_names(field_schema: dict) -> frozenset[str]:
    """What a field's type is called: its JSON and Connect type names and its logical name."""
    kind, name = field_schema.get("type"), field_schema.get("name")
    return frozenset(n for n in (kind, JSON_TYPE_NAMES.get(kind), name) if isinstance(n, str))


def column_type(field_schema: dict) -> ColumnType:
    """The column for one field of a Connect struct schema; `UnsupportedType` names what is not mapped."""
    kind, name = field_schema.get("type"), field_schema.get("name")
    label = field_schema.get("field", "?")
    if name == "org.apache.kafka.connect.data.Decimal":
        params = field_schema.get("parameters") or {}
        scale = int(params.get("scale", 0))
        precision = int(params.get("connect.decimal.precision", MAX_DECIMAL_PRECISION))
        if precision <= MAX_DECIMAL_PRECISION and 0 <= scale <= precision:
            return ColumnType(
                f"DECIMAL({precision},{scale})",
                bytes,
                pa.decimal128(precision, scale),
                convert=_decimal_converter(precision, scale),
            )
        return ColumnType("VARCHAR", bytes, pa.string(), convert=_decimal_text_converter(scale), kind="numeric_text")
    if name in _LOGICAL:
        return _LOGICAL[name]
    if name and not name.startswith(("org.apache.kafka.connect.data", "io.debezium")) and kind in _PRIMITIVES:
        return _PRIMITIVES[kind]  # a user-named schema over a primitive keeps the primitive's meaning
    if name:
        raise UnsupportedType(f"field {label!r} has logical type {name!r} ({kind}), which the loader does not map")
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    if kind == "array":
        return _array_type(field_schema, label)
    raise UnsupportedType(f"field {label!r} has Connect type {kind!r}, which the loader does not map")


def _array_type(field_schema: dict, label: str) -> ColumnType:
    items = field_schema.get("items") or {}
    element = column_type({**items, "field": f"{label}[]"})
    if element.duckdb.endswith("[]"):
        raise UnsupportedType(f"field {label!r} is a nested array, which the loader does not map")
    sql = "{c}" if element.sql == "{c}" else "list_transform({c}, lambda x: " + element.sql.replace("{c}", "x") + ")"
    return ColumnType(
        f"{element.duckdb}[]",
        list[element.spec | None],
        pa.list_(element.arrow),
        sql=sql,
        convert=_list_converter(element) if element.convert else None,
        toast=_array_toast(element),
        kind=element.kind,
    )


def _list_converter(element: ColumnType) -> Callable[[list], pa.Array]:
    def convert(values: list) -> pa.Array:
        offsets, flat, total = [0], [], 0
        for value in values:
            if value is not None:
                flat.extend(value)
                total += len(value)
            offsets.append(total)
        mask = pa.array([v is None for v in values], pa.bool_())
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), element.to_arrow(flat), mask=mask)

    return convert


def _array_toast(element: ColumnType) -> str | None:
    """Debezium's placeholder for an unchanged TOASTed array, in the element's Arrow type."""
    if element.duckdb in ("VARCHAR", "JSON") and element.arrow == pa.string():
        return f"[{_STRING_TOAST}]"
    if element.duckdb == "UUID":
        return f"[{_UUID_TOAST}]"
    if element.duckdb == "BLOB":
        return f"[{_BLOB_TOAST}]"
    if element.duckdb in ("INTEGER", "BIGINT"):
        return "[" + ", ".join(str(b) for b in PLACEHOLDER.encode()) + "]"
    return None
