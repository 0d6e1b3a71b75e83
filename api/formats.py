"""One serializer per format, chosen by `Accept` (or `format=`): JSON (the rows' stored JSON, joined),
CSV, Arrow IPC stream and Parquet, with decimals exact in each (strings in JSON and CSV, decimal128
in Arrow and Parquet)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import orjson

FORMATS = {
    "json": b"application/json",
    "csv": b"text/csv; charset=utf-8",
    "arrow": b"application/vnd.apache.arrow.stream",
    "parquet": b"application/vnd.apache.parquet",
}
_BY_TYPE = {
    b"application/json": "json",
    b"text/csv": "csv",
    b"application/vnd.apache.arrow.stream": "arrow",
    b"application/vnd.apache.parquet": "parquet",
    b"application/x-parquet": "parquet",
}


def negotiate(scope, params) -> str:
    for name, value in params:
        if name == "format":
            if value not in FORMATS:
                from api.query import BadQuery

                raise BadQuery(f"format is one of {', '.join(FORMATS)}", "bad_format")
            return value
    for name, value in scope["headers"]:
        if name == b"accept":
            for item in value.split(b","):
                found = _BY_TYPE.get(item.split(b";")[0].strip())
                if found:
                    return found
    return "json"


def render(kind: str, view, query, bodies: list[bytes], cursor: str | None, count: int | None) -> tuple[bytes, bytes]:
    if kind == "json":
        if query.fields:
            bodies = [orjson.dumps({f: row[f] for f in query.fields}) for row in map(orjson.loads, bodies)]
        head = b'{"rows":[' + b",".join(bodies) + b'],"next":' + orjson.dumps(cursor)
        return head + (b',"count":' + str(count).encode() if count is not None else b"") + b"}", FORMATS["json"]
    columns = [view.by_name[f] for f in query.fields] if query.fields else view.columns
    rows = [orjson.loads(b) for b in bodies]
    if kind == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.name for c in columns])
        for row in rows:
            writer.writerow(["" if row[c.name] is None else row[c.name] for c in columns])
        return out.getvalue().encode(), FORMATS["csv"]
    table = arrow_table(columns, rows)
    import pyarrow as pa

    sink = io.BytesIO()
    if kind == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    return sink.getvalue(), FORMATS[kind]


def arrow_table(columns, rows: list[dict]):
    import pyarrow as pa

    arrays, fields = [], []
    for column in columns:
        values = [row[column.name] for row in rows]
        kind = column.kind
        if kind == "decimal" or column.duckdb_type.startswith("DECIMAL"):
            precision, scale = column.duckdb_type[8:-1].split(",")
            kind_type = pa.decimal128(int(precision), int(scale))
            values = [None if v is None else Decimal(v) for v in values]
        elif kind == "integer":
            kind_type = pa.int64()
        elif kind == "number":
            kind_type = pa.float64()
        elif kind == "boolean":
            kind_type = pa.bool_()
        elif kind == "date":
            kind_type = pa.date32()
            values = [None if v is None else date.fromisoformat(v) for v in values]
        elif kind in ("timestamptz", "timestamp"):
            kind_type = pa.timestamp("us", tz="UTC" if kind == "timestamptz" else None)
            values = [None if v is None else datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
        else:
            kind_type = pa.string()
            values = [None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() for v in values]
        arrays.append(pa.array(values, kind_type))
        fields.append(pa.field(column.name, kind_type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
