"""A raw value compared with Postgres's own text of it (`cdc/capture.py`'s `expected_rows.json` of the
type tables, printed with TimeZone UTC and DateStyle ISO), per DuckDB type.

Temporal values are fetched as DuckDB's text (`fetch_sql`): its Python objects cannot hold
infinities, years before 1 or past 9999, or months apart from days.
"""

from __future__ import annotations

import json
import math
import re
import struct

TEXT_FETCHED = ("DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIME WITH TIME ZONE", "INTERVAL")


def fetch_sql(column: str, duckdb_type: str) -> str:
    """The select expression for a raw column: temporal types (and lists of them) as text."""
    quoted = '"' + column + '"'
    element = duckdb_type.removesuffix("[]")
    if element not in TEXT_FETCHED:
        return quoted
    if duckdb_type.endswith("[]"):
        return f"list_transform({quoted}, lambda x: cast(x as varchar)) as {quoted}"
    return f"cast({quoted} as varchar) as {quoted}"


def pg_array(text: str) -> list[str | None]:
    """A one-dimensional Postgres array literal's elements as text (NULL as None)."""
    body = text[1:-1]
    items: list[str | None] = []
    i = 0
    while i < len(body):
        if body[i] == '"':
            j, chars = i + 1, []
            while body[j] != '"':
                if body[j] == "\\":
                    j += 1
                chars.append(body[j])
                j += 1
            items.append("".join(chars))
            i = j + 2
        else:
            j = body.find(",", i)
            j = len(body) if j < 0 else j
            raw = body[i:j]
            items.append(None if raw == "NULL" else raw)
            i = j + 1
    return items


def _float(text: str) -> float:
    return float(text)  # Python reads NaN, Infinity and -Infinity as Postgres prints them


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _duckdb_bc(text: str) -> str:
    """DuckDB prints `4713-01-01 (BC) 00:00:00`; Postgres `4713-01-01 00:00:00 BC`."""
    return text.replace(" (BC)", "") + " BC" if " (BC)" in text else text


_UNIT = re.compile(r"([+-]?\d+) (year|mon|month|day)s?\b")
_CLOCK = re.compile(r"([+-])?(\d+):(\d\d):(\d\d)(?:\.(\d+))?")


def interval_parts(text: str) -> tuple[int, int, int]:
    """Postgres's or DuckDB's text of an interval as (months, days, microseconds)."""
    months = days = 0
    for number, unit in _UNIT.findall(text):
        if unit == "year":
            months += 12 * int(number)
        elif unit in ("mon", "month"):
            months += int(number)
        else:
            days += int(number)
    micros = 0
    if clock := _CLOCK.search(text):
        sign, h, m, sec, fraction = clock.groups()
        micros = ((int(h) * 60 + int(m)) * 60 + int(sec)) * 10**6 + int(((fraction or "") + "000000")[:6])
        micros = -micros if sign == "-" else micros
    return months, days, micros


_TIMETZ = re.compile(r"^(\d\d):(\d\d):(\d\d)(\.\d+)?([+-])(\d\d)(?::(\d\d))?$")


def timetz_utc(text: str) -> str:
    """A timetz as the same time of day in UTC, as DuckDB prints it (Debezium sends it in UTC)."""
    h, m, s, fraction, sign, oh, om = _TIMETZ.match(text).groups()
    offset = (int(oh) * 60 + int(om or 0)) * (1 if sign == "+" else -1)
    minutes = (int(h) * 60 + int(m) - offset) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:{s}{fraction or ''}+00"


_HSTORE = re.compile(r'"((?:[^"\\]|\\.)*)"=>(?:NULL|"((?:[^"\\]|\\.)*)")')


def _hstore(text: str) -> dict:
    pairs = {}
    for match in _HSTORE.finditer(text):
        whole = match[0]
        pairs[match[1]] = None if whole.endswith("NULL") else match[2]
    return pairs


_NUMBER = re.compile(r"-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|Infinity|NaN)")


def _same_shape_and_numbers(connector: str, postgres: str) -> bool:
    """Geometric text as the connector prints it (`{1.0,-1.0,0.0}`) against Postgres's (`{1,-1,0}`)."""
    if _NUMBER.sub("#", connector) != _NUMBER.sub("#", postgres):
        return False
    return all(_same_float(float(a), float(b)) for a, b in zip(_NUMBER.findall(connector), _NUMBER.findall(postgres)))


GEOMETRIC = {"line_col", "lseg_col", "box_col", "path_col", "polygon_col", "circle_col"}


def matches(column: str, duckdb_type: str, value, text: str | None) -> bool:
    """Whether the raw value is exactly the value Postgres printed as `text`."""
    if text is None or value is None:
        return text is None and value is None
    if duckdb_type.endswith("[]"):
        items = pg_array(text)
        element = duckdb_type[:-2]
        return len(items) == len(value) and all(
            matches(column, element, v, t) for v, t in zip(value, items, strict=True)
        )
    if duckdb_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UUID", "BIT"):
        return str(value) == text
    if duckdb_type == "FLOAT":
        return _same_float(value, _float32(_float(text)))
    if duckdb_type == "DOUBLE":
        return _same_float(value, _float(text))
    if duckdb_type.startswith("DECIMAL"):
        if column == "money_col":  # Postgres prints money in lc_monetary's notation: -$1,234.56
            text = text.replace("$", "").replace(",", "")
        return str(value) == text
    if duckdb_type == "BOOLEAN":
        return value is (text in ("t", "1"))
    if duckdb_type == "BLOB":
        return value == bytes.fromhex(text[2:])
    if duckdb_type == "JSON":
        if column == "hstore_col":
            return json.loads(value) == _hstore(text)
        return value == text
    if duckdb_type.startswith("STRUCT(x DOUBLE, y DOUBLE)"):
        x, y = text.strip("()").split(",")
        return _same_float(value["x"], _float(x)) and _same_float(value["y"], _float(y))
    if duckdb_type in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"):
        return _duckdb_bc(value) == text
    if duckdb_type == "TIME":
        return value == text
    if duckdb_type == "TIME WITH TIME ZONE":
        return value == timetz_utc(text)
    if duckdb_type == "INTERVAL":
        return interval_parts(value) == interval_parts(text)
    if duckdb_type == "VARCHAR":
        if column in GEOMETRIC:
            return _same_shape_and_numbers(value, text)
        return value == text
    raise AssertionError(f"no comparison for {duckdb_type} ({column})")
