"""A view request's query string -> one SQL statement over the serving copy, identifiers only from the
catalogue, values always bound.

`col=v` `col__ne=v` `col__gt|gte|lt|lte=v` `col__in=a,b` `col__like=%v%` `col__startswith=v`
`col__is_null=true|false`; `order_by=-placed_at,order_id` (the primary key always ends the order, so
it is total); `fields=a,b`; `limit` (default 50, at most 1,000); `cursor` (opaque, from `next`);
`count=exact`. Reserved too: `after` and `wait` (read-your-writes), `format`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from api.catalogue import BadValue, Column, View
from api.store import quote

RESERVED = {"order_by", "fields", "limit", "cursor", "count", "after", "wait", "format"}
OPERATORS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_LIMIT, DEFAULT_LIMIT = 1000, 50


class BadQuery(ValueError):
    """The request asks for something the view does not have; `problem` names the rule broken."""

    def __init__(self, message: str, problem: str = "bad_query", **extra: Any) -> None:
        super().__init__(message)
        self.problem, self.extra = problem, extra


@dataclass
class Filter:
    column: Column
    operator: str
    value: Any
    position: int

    def sql(self) -> tuple[str, list]:
        name = quote(self.column.name)
        if self.operator == "in":
            return f"{name} in ({', '.join('?' * len(self.value))})", list(self.value)
        if self.operator == "is_null":
            return f"{name} is {'' if self.value else 'not '}null", []
        if self.operator == "like":
            return f"{name} like ? escape '\\'", [self.value]
        if self.operator == "startswith":
            escaped = self.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return f"{name} like ? escape '\\'", [escaped + "%"]
        return f"{name} {OPERATORS[self.operator]} ?", [self.value]

    def matches(self, row: list) -> bool:
        """The same test in Python, on a row of stored values (the live stream's filter)."""
        value = row[self.position]
        if self.operator == "is_null":
            return (value is None) == self.value
        if value is None:
            return False
        if self.operator == "in":
            return value in self.value
        if self.operator in ("like", "startswith"):
            text, pattern = str(value).lower(), self.value.lower()
            if self.operator == "startswith":
                return text.startswith(pattern)
            return _like(text, pattern)
        op = self.operator
        return {
            "eq": value == self.value,
            "ne": value != self.value,
            "gt": value > self.value,
            "gte": value >= self.value,
            "lt": value < self.value,
            "lte": value <= self.value,
        }[op]


def _like(text: str, pattern: str) -> bool:
    import re

    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, text, re.S) is not None


def parse_filters(view: View, params: list[tuple[str, str]]) -> list[Filter]:
    filters = []
    positions = {c.name: i for i, c in enumerate(view.columns)}
    for name, raw in params:
        if name in RESERVED or name.startswith("_"):
            continue
        column_name, _, operator = name.partition("__")
        operator = operator or "eq"
        column = view.by_name.get(column_name)
        if column is None:
            raise BadQuery(
                f"view {view.name!r} has no column {column_name!r}",
                "unknown_column",
                view=view.name,
                column=column_name,
                columns=[c.name for c in view.columns],
            )
        if operator not in OPERATORS and operator not in ("in", "like", "startswith", "is_null"):
            raise BadQuery(
                f"unknown operator {operator!r} in {name!r}; use one of eq, ne, gt, gte, lt, lte, in, "
                "like, startswith, is_null",
                "unknown_operator",
                column=column_name,
                operator=operator,
            )
        try:
            if operator == "is_null":
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise BadValue(f"{raw!r} is not true or false")
                value: Any = raw.lower() in ("true", "1")
            elif operator in ("like", "startswith"):
                if column.kind != "text":
                    raise BadValue(f"{operator} needs a text column; {column_name!r} is {column.duckdb_type}")
                value = raw
            elif operator == "in":
                items = [item for item in raw.split(",")]
                if not raw or len(items) > MAX_LIMIT:
                    raise BadValue(f"__in takes 1 to {MAX_LIMIT} comma-separated values")
                value = tuple(column.parse(item) for item in items)
            else:
                if operator not in ("eq", "ne") and not column.comparable:
                    raise BadValue(f"{column_name!r} ({column.duckdb_type}) has no order for __{operator}")
                value = column.parse(raw)
        except BadValue as err:
            raise BadQuery(f"bad value for {name!r}: {err}", "bad_value", column=column_name, value=raw) from None
        filters.append(Filter(column, operator, value, positions[column.name]))
    return filters


@dataclass
class Query:
    view: View
    filters: list[Filter]
    order: list[tuple[Column, bool]]
    fields: list[str] | None
    limit: int
    after: list | None = None
    count: bool = False
    fingerprint: str = field(default="")

    def where(self) -> tuple[list[str], list]:
        clauses, args = [], []
        for f in self.filters:
            clause, values = f.sql()
            clauses.append(clause)
            args += values
        return clauses, args

    def page_sql(self) -> tuple[str, list]:
        clauses, args = self.where()
        if self.after is not None:
            clause, values = _keyset(self.order, self.after)
            clauses.append(clause)
            args += values
        order = ", ".join(f"{quote(c.name)} {'desc' if desc else 'asc'}" for c, desc in self.order)
        where = f"where {' and '.join(clauses)}" if clauses else ""
        names = ", ".join(quote(c.name) for c, _ in self.order)
        from api.store import table_of

        return (
            f"select _json, {names} from {table_of(self.view.name)} {where} order by {order} limit ?",
            [*args, self.limit + 1],
        )

    def count_sql(self) -> tuple[str, list]:
        clauses, args = self.where()
        from api.store import table_of

        where = f"where {' and '.join(clauses)}" if clauses else ""
        return f"select count(*) from {table_of(self.view.name)} {where}", args

    def cursor(self, last: tuple) -> str:
        token = orjson.dumps([self.fingerprint, list(last)])
        return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _keyset(order: list[tuple[Column, bool]], values: list) -> tuple[str, list]:
    """Rows strictly after `values` in `order`, NULLs where SQLite sorts them (first ascending, last
    descending)."""
    (column, desc), value = order[0], values[0]
    name = quote(column.name)
    rest = _keyset(order[1:], values[1:]) if len(order) > 1 else None
    if value is None:
        tie = f"{name} is null"
        after = f"{name} is not null" if not desc else None
        args: list = []
    else:
        tie = f"{name} = ?"
        after = f"({name} {'<' if desc else '>'} ? or {name} is null)" if desc else f"{name} > ?"
        args = [value]
    parts, out = [], []
    if after:
        parts.append(after)
        out += args
    if rest:
        parts.append(f"({tie} and {rest[0]})")
        out += args + rest[1]
    return "(" + " or ".join(parts or ["0"]) + ")", out


def parse(view: View, params: list[tuple[str, str]]) -> Query:
    values = dict(params)
    filters = parse_filters(view, params)
    order: list[tuple[Column, bool]] = []
    if "order_by" in values:
        for item in filter(None, values["order_by"].split(",")):
            desc, name = item.startswith("-"), item.lstrip("-")
            column = view.by_name.get(name)
            if column is None or not column.comparable and column.kind != "boolean":
                raise BadQuery(
                    f"cannot order {view.name!r} by {name!r}" + ("" if column else ": no such column"),
                    "bad_order",
                    column=name,
                )
            order.append((column, desc))
    else:
        order = [(view.by_name[name], desc) for name, desc in view.default_order]
    for key in view.primary_key:  # a total order: the key ends it
        if all(c.name != key for c, _ in order):
            order.append((view.by_name[key], False))
    fields = None
    if values.get("fields"):
        fields = values["fields"].split(",")
        for name in fields:
            if name not in view.by_name:
                raise BadQuery(f"view {view.name!r} has no column {name!r} for fields", "unknown_column", column=name)
    try:
        limit = int(values.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise BadQuery(f"limit must be an integer from 1 to {MAX_LIMIT}", "bad_limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"limit must be an integer from 1 to {MAX_LIMIT}", "bad_limit")
    count = values.get("count")
    if count not in (None, "exact", "none"):
        raise BadQuery("count takes `exact` (or `none`)", "bad_count")
    signature = [view.name, [(f.column.name, f.operator, f.value) for f in filters], [(c.name, d) for c, d in order]]
    fingerprint = hashlib.blake2b(orjson.dumps(signature, default=str), digest_size=6).hexdigest()
    query = Query(view, filters, order, fields, limit, count=count == "exact", fingerprint=fingerprint)
    if values.get("cursor"):
        query.after = _decode_cursor(values["cursor"], fingerprint, len(order))
    return query


def _decode_cursor(token: str, fingerprint: str, width: int) -> list:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        seen, values = decoded
        if not isinstance(values, list) or len(values) != width:
            raise ValueError
        if any(v is not None and not isinstance(v, (int, float, str)) for v in values):
            raise ValueError
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadQuery("the cursor is not one this API gave out", "bad_cursor") from None
    if seen != fingerprint:
        raise BadQuery(
            "the cursor belongs to another query: keep the filters and order_by it was given with", "bad_cursor"
        )
    return values


def parse_key(view: View, text: str) -> list:
    """`GET /views/{view}/{key}`: the key's values in `primary_key` order, comma-separated for a composite
    key (a value holding a comma is percent-encoded as %2C twice over: `%252C`)."""
    from urllib.parse import unquote

    parts = [unquote(p) for p in text.split(",")] if len(view.primary_key) > 1 else [text]
    if len(parts) != len(view.primary_key):
        raise BadQuery(
            f"the key of {view.name!r} is {', '.join(view.primary_key)}: give {len(view.primary_key)} "
            "comma-separated values",
            "bad_key",
        )
    try:
        return [view.by_name[k].parse(p) for k, p in zip(view.primary_key, parts)]
    except BadValue as err:
        raise BadQuery(f"bad key: {err}", "bad_key") from None
