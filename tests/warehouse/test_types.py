"""Connect and Debezium types map to DuckDB exactly; raw columns only ever widen."""

from __future__ import annotations

import base64
import json

import duckdb
import msgspec
import pyarrow as pa
import pytest

from warehouse.ingest.catalog import Catalog, raw_table_name, supertype
from warehouse.ingest.connect_types import PLACEHOLDER, column_type, decimal_text, iso_interval
from warehouse.ingest.exceptions import IncompatibleSchema, UnsupportedType


@pytest.mark.parametrize(
    ("unscaled", "scale", "text"),
    [
        (-1234567890123456789012345678901, 11, "-12345678901234567890.12345678901"),
        (10, 2, "0.10"),
        (-5, 3, "-0.005"),
        (0, 2, "0.00"),
        (123, 0, "123"),
        (7, -2, "700"),
    ],
)
def test_decimal_text_is_exact(unscaled, scale, text):
    assert decimal_text(unscaled, scale) == text


def test_decimals_never_pass_through_a_float():
    column = column_type(
        {
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "field": "d",
            "parameters": {"scale": "4", "connect.decimal.precision": "30"},
        }
    )
    value = (10**29 - 1).to_bytes(13, "big", signed=True)
    array = column.to_arrow([value, None, (-1).to_bytes(1, "big", signed=True)])
    assert column.duckdb == "DECIMAL(30,4)"
    assert [str(v) if v is not None else None for v in array.to_pylist()] == [
        "9999999999999999999999999.9999",
        None,
        "-0.0001",
    ]
    wide = column_type(
        {
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "field": "w",
            "parameters": {"scale": "2", "connect.decimal.precision": "60"},
        }
    )
    assert wide.duckdb == "VARCHAR" and wide.to_arrow([(10**50 + 1).to_bytes(22, "big")]).to_pylist() == [
        "1" + "0" * 48 + ".01"
    ]


@pytest.mark.parametrize(
    ("text", "months", "days", "nanos"),
    [
        ("P1Y2M3DT4H5M6.789S", 14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 789_000_000),
        ("PT-0.5S", 0, 0, -500_000_000),
        ("P0D", 0, 0, 0),
        ("-P1M", -1, 0, 0),
    ],
)
def test_iso_intervals_keep_months_days_and_time_apart(text, months, days, nanos):
    assert iso_interval(text) == (months, days, nanos)


def test_intervals_land_as_duckdb_intervals():
    column = column_type({"type": "string", "name": "io.debezium.time.Interval", "field": "i"})
    with duckdb.connect() as conn:
        conn.register("landing", pa.table({"i": column.to_arrow(["P1Y2M3DT4H5M6.789S"])}))
        assert conn.execute("select i = interval '1 year 2 months 3 days 04:05:06.789' from landing").fetchone()[0]


def test_unknown_types_are_refused_by_name():
    with pytest.raises(UnsupportedType, match="io.debezium.data.geometry.Geometry"):
        column_type({"type": "struct", "name": "io.debezium.data.geometry.Geometry", "field": "p"})
    with pytest.raises(UnsupportedType, match="'map'"):
        column_type({"type": "map", "field": "m"})


def test_toasted_arrays_match_debeziums_placeholders():
    texts = column_type({"type": "array", "items": {"type": "string"}, "field": "t"})
    ints = column_type({"type": "array", "items": {"type": "int32"}, "field": "n"})
    with duckdb.connect() as conn:
        assert conn.execute(f"select [?] = {texts.toast}", [PLACEHOLDER]).fetchone()[0]
        assert conn.execute(f"select ?::INTEGER[] = {ints.toast}", [list(PLACEHOLDER.encode())]).fetchone()[0]


def test_a_toasted_bytes_value_matches_the_placeholder_bytes():
    """The JSON converter sends bytes as base64: an unchanged TOASTed bytea is the placeholder's bytes."""
    blob = column_type({"type": "bytes", "field": "b"})
    sent = [json.dumps(base64.b64encode(value).decode()) for value in (PLACEHOLDER.encode(), b"\x00data")]
    decoded = [msgspec.json.decode(text, type=blob.spec) for text in sent]
    with duckdb.connect() as conn:
        conn.register("landing", pa.table({"b": blob.to_arrow(decoded)}))
        assert conn.execute(f"select list(b = {blob.toast}) from landing").fetchone()[0] == [True, False]


@pytest.mark.parametrize(
    ("old", "new", "kind", "result"),
    [
        ("INTEGER", "BIGINT", "", "BIGINT"),
        ("BIGINT", "INTEGER", "", "BIGINT"),
        ("FLOAT", "DOUBLE", "", "DOUBLE"),
        ("DECIMAL(12,2)", "DECIMAL(14,4)", "", "DECIMAL(14,4)"),
        ("DECIMAL(12,2)", "DECIMAL(10,4)", "", "DECIMAL(14,4)"),
        ("INTEGER", "DECIMAL(12,2)", "", "DECIMAL(12,2)"),
        ("DECIMAL(12,2)", "VARCHAR", "numeric_text", "VARCHAR"),
        ("DECIMAL(12,2)", "VARCHAR", "", "VARCHAR"),  # a numeric(12,2) that received a NaN
        ("INTEGER[]", "BIGINT[]", "", "BIGINT[]"),
        ("JSON", "VARCHAR", "", "VARCHAR"),
        ("DATE", "TIMESTAMP", "", "TIMESTAMP"),
        ("BIGINT", "VARCHAR", "", None),
        ("VARCHAR", "UUID", "", None),
        ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "", None),
        ("DECIMAL(38,0)", "DECIMAL(38,10)", "", None),
        ("BIGINT", "DOUBLE", "", None),
    ],
)
def test_supertype_holds_both_exactly_or_is_none(old, new, kind, result):
    assert supertype(old, new, kind) == result


def test_catalog_refuses_incompatible_changes_without_changing_anything():
    catalog = Catalog({"orders__orders": {"id": "INTEGER", "total": "DECIMAL(12,2)"}})
    text = column_type({"type": "string", "field": "id"})
    with pytest.raises(IncompatibleSchema, match="'id'.*INTEGER.*VARCHAR"):
        catalog.admit("orders__orders", [("id", text)])
    assert catalog.tables["orders__orders"] == {"id": "INTEGER", "total": "DECIMAL(12,2)"}
    with pytest.raises(IncompatibleSchema, match="collides"):
        catalog.admit("orders__orders", [("_op", text)])


def test_raw_table_names():
    assert raw_table_name("orders.public.order_lines") == "orders__order_lines"
    assert raw_table_name("orders.mirador.heartbeat") == "orders__mirador__heartbeat"


def test_numeric_intervals_land_as_debezium_folded_them():
    """interval.handling.mode=numeric: '1 mon' arrives as 2,629,800,000,000 us (30.4375 days), not a month."""
    column = column_type({"type": "int64", "name": "io.debezium.time.MicroDuration", "field": "i"})
    with duckdb.connect() as conn:
        conn.register("landing", pa.table({"i": column.to_arrow([2_629_800_000_000, None])}))
        sql = column.sql.format(c="i")
        assert conn.execute(f"select {sql}::varchar from landing").fetchall() == [("730:30:00",), (None,)]
