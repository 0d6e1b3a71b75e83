"""What the API serves: each exposed view's columns, their types, and how values are kept and shown.

A view's columns and DuckDB types come from its publication file, its descriptions, primary key and
default order from the dbt manifest the publication carries (`meta.expose`, `meta.primary_key`,
`meta.default_order`). Each column is kept in the serving copy (SQLite) in a form that compares and
sorts like the value (decimals as scaled integers, timestamps as microseconds since the epoch) and
shown in JSON exactly (decimals and timestamps as strings, never floats).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAIVE_EPOCH = datetime(1970, 1, 1)
MICRO = timedelta(microseconds=1)
_DECIMAL = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}


class BadValue(ValueError):
    """A query value that the column's type cannot hold."""


@dataclass(frozen=True)
class Column:
    name: str
    duckdb_type: str
    description: str = ""

    @cached_property  # asked for each value the copy stores
    def kind(self) -> str:
        t = self.duckdb_type
        if t in _INTEGERS:
            return "integer"
        if t in ("FLOAT", "DOUBLE"):
            return "number"
        if (m := _DECIMAL.match(t)) and int(m[1]) <= 18:
            return "decimal"
        if m or t in ("HUGEINT", "UBIGINT"):
            return "decimal_text"
        if t == "BOOLEAN":
            return "boolean"
        if t in ("VARCHAR", "UUID"):
            return "text"
        if t == "DATE":
            return "date"
        if t == "TIMESTAMP WITH TIME ZONE":
            return "timestamptz"
        if t == "TIMESTAMP":
            return "timestamp"
        return "other"

    @cached_property
    def scale(self) -> int:
        m = _DECIMAL.match(self.duckdb_type)
        return int(m[2]) if m else 0

    @property
    def comparable(self) -> bool:
        """Ordered comparisons (`__gt` ...) and sorting make sense on it."""
        return self.kind not in ("other", "decimal_text", "boolean")

    def json_schema(self) -> dict:
        kind = self.kind
        schema: dict[str, Any] = {
            "integer": {"type": "integer"},
            "number": {"type": "number"},
            "boolean": {"type": "boolean"},
            "decimal": {"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$"},
            "decimal_text": {"type": "string", "format": "decimal"},
            "text": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "timestamptz": {"type": "string", "format": "date-time"},
            "timestamp": {"type": "string", "format": "date-time"},
        }.get(kind, {})
        schema = {**schema, "type": [schema["type"], "null"]} if "type" in schema else {}
        if self.description:
            schema["description"] = self.description
        return schema

    # -- values --------------------------------------------------------------------------------

    def stored(self, value: Any) -> Any:
        """A DuckDB value as the serving copy keeps it."""
        if value is None:
            return None
        kind = self.kind
        if kind == "decimal":
            return int(value.scaleb(self.scale))
        if kind == "timestamptz":
            return (value - EPOCH) // MICRO
        if kind == "timestamp":
            return (value - NAIVE_EPOCH) // MICRO
        if kind == "boolean":
            return int(value)
        if kind == "date":
            return value.isoformat()
        if kind in ("text", "integer", "number"):
            return value if kind != "text" else str(value)
        return shown(value) if kind == "decimal_text" else None

    def unstored(self, value: Any) -> Any:
        """A stored value as JSON shows it (the live stream's keys)."""
        if value is None:
            return None
        kind = self.kind
        if kind == "decimal":
            return str(Decimal(value).scaleb(-self.scale))
        if kind == "timestamptz":
            return shown(EPOCH + value * MICRO)
        if kind == "timestamp":
            return shown(NAIVE_EPOCH + value * MICRO)
        if kind == "boolean":
            return bool(value)
        return value

    def parse(self, text: str) -> Any:
        """A query's value for this column, as the serving copy keeps it; BadValue if it cannot be one."""
        kind = self.kind
        try:
            if kind == "integer":
                if not -(2**63) <= (number := int(text)) < 2**63:  # what SQLite holds, and every integer column
                    raise ValueError("out of range")
                return number
            if kind == "number":
                return float(text)
            if kind == "decimal":
                number = Decimal(text)
                if not number.is_finite():
                    raise BadValue(f"{text!r} is not a finite number")
                scaled = number.scaleb(self.scale)
                if scaled != scaled.to_integral_value():
                    raise BadValue(f"{text!r} has more than {self.scale} decimal places")
                return int(scaled)
            if kind == "decimal_text":
                return shown(Decimal(text))
            if kind == "boolean":
                if text.lower() in ("true", "1", "t", "yes"):
                    return 1
                if text.lower() in ("false", "0", "f", "no"):
                    return 0
                raise BadValue(f"{text!r} is not true or false")
            if kind == "date":
                return date.fromisoformat(text).isoformat()
            if kind in ("timestamptz", "timestamp"):
                moment = datetime.fromisoformat(text.replace(" ", "+") if text.endswith(" 00:00") else text)
                if kind == "timestamptz":
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=UTC)
                    return (moment - EPOCH) // MICRO
                return (moment.replace(tzinfo=None) - NAIVE_EPOCH) // MICRO
            if kind == "text":
                return text
        except (ValueError, InvalidOperation, OverflowError):
            raise BadValue(f"{text!r} is not a valid {self.duckdb_type} value") from None
        raise BadValue(f"column {self.name!r} ({self.duckdb_type}) cannot be filtered on")


def shown(value: Any) -> Any:
    """A DuckDB value as JSON shows it: exact decimals and times as strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, (date, timedelta)):
        return value.isoformat() if isinstance(value, date) else str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, list):
        return [shown(v) for v in value]
    if isinstance(value, dict):
        return {str(k): shown(v) for k, v in value.items()}
    if hasattr(value, "hex") and not isinstance(value, (int, float, str)):  # uuid.UUID
        return str(value)
    return value


@dataclass
class View:
    name: str
    columns: list[Column]
    primary_key: list[str]
    default_order: list[tuple[str, bool]]
    """(column, descending) pairs."""
    description: str = ""
    lookups: list[list[str]] = field(default_factory=list)
    """Columns a front-end filters on that the model's `meta.indexed` names (each a column or a list)."""
    by_name: dict[str, Column] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {column.name: column for column in self.columns}

    @property
    def indexed(self) -> list[list[str]]:
        """Indexes the serving copy keeps: the default order, and every `_id` column and every lookup
        the model's `meta.indexed` names, each followed by the default order, so a page filtered on one
        is read in order (not all its rows scanned, then sorted)."""
        order = [name for name, _ in self.default_order]
        indexes = [order] if order else []
        leads = [[c.name] for c in self.columns if c.name.endswith("_id") and [c.name] != self.primary_key]
        leads += [lookup for lookup in self.lookups if lookup not in leads]
        indexes += [[*lead, *(n for n in order if n not in lead)] for lead in leads]
        return indexes

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "primary_key": self.primary_key,
            "default_order": [("-" if desc else "") + name for name, desc in self.default_order],
            "columns": [{"name": c.name, "type": c.duckdb_type, "description": c.description} for c in self.columns],
        }


def view_from(name: str, columns: list[tuple[str, str]], entry: dict, key: list[str]) -> View:
    """A view from its publication's columns and its catalogue entry (the dbt manifest's)."""
    described = entry.get("columns", {})
    meta = entry.get("meta", {})
    served = [Column(column, kind, described.get(column, "")) for column, kind in columns if not column.startswith("_")]
    names = {c.name for c in served}
    order = []
    for item in meta.get("default_order") or []:
        column, _, direction = str(item).partition(" ")
        if column in names:
            order.append((column, direction.strip().lower() == "desc"))
    lookups = []
    for item in meta.get("indexed") or []:
        lookup = [str(c) for c in item] if isinstance(item, list) else [str(item)]
        if lookup and all(c in names for c in lookup):
            lookups.append(lookup)
    return View(name, served, [k for k in key if k in names], order, entry.get("description", ""), lookups)
