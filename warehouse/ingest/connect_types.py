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
import pyarrow.compute as pc

from warehouse.ingest.exceptions import PoisonMessage, UnsupportedType

PLACEHOLDER = "__debezium_unavailable_value"
"""What Debezium sends for an unchanged TOASTed value (`unavailable.value.placeholder`)."""

MAX_DECIMAL_PRECISION = 38

SOURCE_TYPE = "__debezium.source.column.type"
"""Schema parameters the connector adds for types named in `datatype.propagate.source.type`."""
SOURCE_LENGTH = "__debezium.source.column.length"
SOURCE_SCALE = "__debezium.source.column.scale"

NUMERIC_SPECIALS = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}
"""What `decimal.handling.mode=string` sends for numeric's special values -> Postgres's text of them."""


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
    """`numeric_text` for exact decimal text (a DECIMAL column may widen to it); `numeric_string` for a
    string decimal landing as DECIMAL until a NaN or infinity arrives (then `text` takes over)."""
    text: ColumnType | None = field(default=None, compare=False)
    """For `numeric_string`: the same values as exact Postgres text, NaN and infinities included."""

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


# Debezium sends Postgres's infinite dates and timestamps as out-of-range numbers (measured, 3.6.1: one
# pair from the snapshot's JDBC reads, another from the WAL); DuckDB keeps its own infinities.
_DATE_INFINITIES = {-622191234: 2**31 - 1, -2147472692: 2**31 - 1, -625821272: -(2**31 - 1), -2147472691: -(2**31 - 1)}
_MICROS_INFINITIES = {9223372036825200000: 2**63 - 1, -9223372036832400000: -(2**63 - 1)}
_MILLIS_INFINITIES = {9223372036825200: 2**63 - 1, -9223372036832400: -(2**63 - 1)}


def _sentinels(integers: pa.DataType, infinities: dict[int, int], target: pa.DataType, scale: int = 1):
    """Integers since the epoch (times `scale`) as `target`, Debezium's infinity stand-ins as DuckDB's
    infinities (the largest and smallest but one value of its storage)."""
    keys = pa.array(list(infinities), integers)

    def convert(values: list) -> pa.Array:
        array = pa.array(values, integers)
        if pc.any(pc.is_in(array, value_set=keys)).as_py():
            array = pa.array([None if v is None else infinities.get(v, v * scale) for v in values], integers)
        elif scale != 1:
            array = pc.multiply(array, scale)
        return array.view(target)

    return convert


def _bits_converter(length: int) -> Callable[[list], list]:
    """`io.debezium.data.Bits` of a bit(n): the bits as a little-endian number -> the n-digit bit string."""

    def convert(values: list) -> list:
        return [None if v is None else format(int.from_bytes(v, "little"), f"0{length}b") for v in values]

    return convert


class Point(msgspec.Struct, gc=False):
    """`io.debezium.data.geometry.Point`; JSON has no NaN or infinities, so they come as strings."""

    x: float | str
    y: float | str
    wkb: bytes | None = None
    srid: int | None = None


_POINT = pa.struct([("x", pa.float64()), ("y", pa.float64())])


def _points(values: list) -> pa.Array:
    xs = _floats([None if v is None else v.x for v in values])
    ys = _floats([None if v is None else v.y for v in values])
    mask = pa.array([v is None for v in values], pa.bool_())
    return pa.StructArray.from_arrays([pa.array(xs, pa.float64()), pa.array(ys, pa.float64())], ["x", "y"], mask=mask)


def _raw_json(values: list) -> list:
    """Values of a field the loader cannot map, as their JSON text."""
    return [None if v is None or bytes(v) == b"null" else bytes(v).decode() for v in values]


def unmapped_column(label: str) -> ColumnType:
    """A field of a type the loader cannot map: its JSON text, so the rest of the row still lands."""
    return ColumnType("JSON", msgspec.Raw, pa.string(), sql="CAST({c} AS JSON)", convert=_raw_json, kind="unmapped")


# -- The mapping --------------------------------------------------------------------------------------

_PRIMITIVES: dict[str, ColumnType] = {
    "int8": ColumnType("TINYINT", int, pa.int8()),
    "int16": ColumnType("SMALLINT", int, pa.int16()),
    "int32": ColumnType("INTEGER", int, pa.int32()),
    "int64": ColumnType("BIGINT", int, pa.int64()),
    "float32": ColumnType("FLOAT", float | str, pa.float32(), convert=_floats),
    "float64": ColumnType("DOUBLE", float | str, pa.float64(), convert=_floats),
    # the JsonConverter's names of float32 and float64
    "float": ColumnType("FLOAT", float | str, pa.float32(), convert=_floats),
    "double": ColumnType("DOUBLE", float | str, pa.float64(), convert=_floats),
    "boolean": ColumnType("BOOLEAN", bool, pa.bool_()),
    "string": ColumnType("VARCHAR", str, pa.string(), toast=_STRING_TOAST),
    "bytes": ColumnType("BLOB", bytes, pa.binary(), toast=_BLOB_TOAST),
}

_TEXT = _PRIMITIVES["string"]

_LOGICAL: dict[str, ColumnType] = {
    # dates and times: integers since the epoch or midnight, in the unit the name says
    "org.apache.kafka.connect.data.Date": ColumnType("DATE", int, pa.date32()),
    "io.debezium.time.Date": ColumnType(
        "DATE", int, pa.date32(), convert=_sentinels(pa.int32(), _DATE_INFINITIES, pa.date32())
    ),
    "org.apache.kafka.connect.data.Time": ColumnType("TIME", int, pa.time32("ms")),
    "io.debezium.time.Time": ColumnType("TIME", int, pa.time32("ms")),
    "io.debezium.time.MicroTime": ColumnType("TIME", int, pa.time64("us")),
    "io.debezium.time.NanoTime": ColumnType("TIME", int, pa.time64("ns")),
    "org.apache.kafka.connect.data.Timestamp": ColumnType("TIMESTAMP", int, pa.timestamp("ms")),
    "io.debezium.time.Timestamp": ColumnType(
        "TIMESTAMP",
        int,
        pa.timestamp("us"),
        convert=_sentinels(pa.int64(), _MILLIS_INFINITIES, pa.timestamp("us"), scale=1000),
    ),
    "io.debezium.time.MicroTimestamp": ColumnType(
        "TIMESTAMP", int, pa.timestamp("us"), convert=_sentinels(pa.int64(), _MICROS_INFINITIES, pa.timestamp("us"))
    ),
    "io.debezium.time.NanoTimestamp": ColumnType("TIMESTAMP_NS", int, pa.timestamp("ns")),
    # years past 9999 come with a `+` DuckDB does not read; the odd year is an infinite element of an array
    "io.debezium.time.ZonedTimestamp": ColumnType(
        "TIMESTAMP WITH TIME ZONE",
        str,
        pa.string(),
        sql=(  # starts_with keeps the common case at a plain cast's cost (LIKE and ltrim took 2.5 times it)
            "CAST(CASE WHEN starts_with({c}, '+') THEN CASE WHEN starts_with({c}, '+29226905') THEN '-infinity' "
            "ELSE substr({c}, 2) END ELSE {c} END AS TIMESTAMPTZ)"
        ),
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
    "io.debezium.data.Tsvector": _TEXT,
    "io.debezium.data.geometry.Point": ColumnType("STRUCT(x DOUBLE, y DOUBLE)", Point, _POINT, convert=_points),
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


def describe(field_schema: dict) -> str:
    """A field's type as a reader names it: `struct io.debezium.data.geometry.Geometry`, `map`."""
    kind, name = field_schema.get("type"), field_schema.get("name")
    if kind == "array":
        return f"array of {describe(field_schema.get('items') or {})}"
    if kind == "map":
        return f"map of {describe(field_schema.get('keys') or {})} to {describe(field_schema.get('values') or {})}"
    return f"{kind} {name}" if name else str(kind)


def column_type(field_schema: dict) -> ColumnType:
    """The column for one field of a Connect struct schema; `UnsupportedType` names what is not mapped."""
    kind, name = field_schema.get("type"), field_schema.get("name")
    label = field_schema.get("field", "?")
    params = field_schema.get("parameters") or {}
    source = params.get(SOURCE_TYPE)
    if source and not name:
        if kind == "string" and source in ("NUMERIC", "DECIMAL", "MONEY"):
            return _string_decimal(source, params)
        if kind == "bytes" and source != "BYTEA":
            return _CONNECTOR_TEXT  # include.unknown.datatypes: the type's text, as the connector prints it
    if name == "io.debezium.data.Bits" and source == "BIT" and params.get("length", "").isdigit():
        length = int(params["length"])
        return ColumnType("BIT", bytes, pa.string(), sql="CAST({c} AS BIT)", convert=_bits_converter(length))
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


_CONNECTOR_TEXT = ColumnType("VARCHAR", bytes, pa.binary(), sql="decode({c})", toast=_BLOB_TOAST)


def _numeric_text_sql(exact: str) -> str:
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in NUMERIC_SPECIALS.items())
    return f"CASE {{c}} {cases} ELSE {exact} END"


def _string_decimal(source: str, params: dict) -> ColumnType:
    """`decimal.handling.mode=string` with the source type propagated: DECIMAL(p,s) where it fits,
    exact text otherwise; NaN and infinities arrive as words and turn a DECIMAL column into text."""
    length, scale = int(params.get(SOURCE_LENGTH) or 0), int(params.get(SOURCE_SCALE) or 0)
    if source == "MONEY":
        length, scale = 19, 2  # int64 cents: lc_monetary's two fraction digits (money.fraction.digits)
    elif scale > length:
        length, scale = length + 2048 - scale, 0  # a negative scale, sent as 2048 + scale: whole numbers
    if not 0 < length <= MAX_DECIMAL_PRECISION:  # unbounded numeric (length 0), or wider than DuckDB
        return ColumnType(
            "VARCHAR", str, pa.string(), sql=_numeric_text_sql("{c}"), toast=_STRING_TOAST, kind="numeric_text"
        )
    decimal = f"DECIMAL({length},{scale})"
    text = ColumnType(
        "VARCHAR",
        str,
        pa.string(),
        sql=_numeric_text_sql(f"CAST(CAST({{c}} AS {decimal}) AS VARCHAR)"),
        toast=_STRING_TOAST,
        kind="numeric_text",
    )
    return ColumnType(
        decimal,
        str,
        pa.string(),
        sql=f"CAST({{c}} AS {decimal})",
        toast=_STRING_TOAST,
        kind="numeric_string",
        text=text,
    )


def has_numeric_special(array: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a string decimal column (or a list of them) holds a NaN or an infinity."""
    while pa.types.is_list(array.type):
        array = pc.list_flatten(array)
    return bool(pc.any(pc.is_in(array, value_set=pa.array(list(NUMERIC_SPECIALS)))).as_py())


def _array_type(field_schema: dict, label: str) -> ColumnType:
    items = field_schema.get("items") or {}
    params = field_schema.get("parameters") or {}
    if params.get(SOURCE_TYPE, "").startswith("_") and not items.get("name"):
        # an array's propagated source type (`_NUMERIC`, with its length and scale) is its elements'
        element_params = {**params, SOURCE_TYPE: params[SOURCE_TYPE][1:]}
        items = {**items, "parameters": {**(items.get("parameters") or {}), **element_params}}
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
        text=_array_type_of(element.text) if element.text else None,
    )


def _array_type_of(element: ColumnType) -> ColumnType:
    return ColumnType(
        f"{element.duckdb}[]",
        list[element.spec | None],
        pa.list_(element.arrow),
        sql="list_transform({c}, lambda x: " + element.sql.replace("{c}", "x") + ")",
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
