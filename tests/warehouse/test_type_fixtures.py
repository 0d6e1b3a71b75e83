"""Every PostgreSQL type the connector documents lands exactly (`cdc/type_tables.py`, captured from
real Debezium into tests/fixtures/debezium/types): each step landed in order into a real DuckDB file,
the changelog folded as staging folds it, and every cell compared with Postgres's own text."""

from __future__ import annotations

import json

import duckdb
import pytest

from cdc import type_tables
from tests.warehouse.captures import FIXTURES, as_message
from tests.warehouse.type_values import fetch_sql, matches, timetz_utc
from warehouse.ingest.catalog import Catalog
from warehouse.ingest.decode import Batch, Decoder
from warehouse.ingest.frames import prepare
from warehouse.ingest.land import Warehouse

TYPES = FIXTURES / "types"
STEPS = ["snapshot"] + [step for step, _, _ in type_tables.STEPS]
KEYS = {table: ["id"] for table in type_tables.TABLES} | {
    "keys": ["k_int", "k_text", "k_date", "k_ts", "k_uuid", "k_dec"]
}

NOT_SENT = {"arrays": {"interval_arr"}}
"""Columns the connector leaves out of its events altogether (it has no mapping for interval[])."""

CONNECTOR_LOSSES = {
    ("numbers", "num_col", 1): "a 75-digit unbounded numeric arrives with 58 digits",
    ("numbers", "num_col", 2): "a 75-digit unbounded numeric arrives with 58 digits",
    ("others", "varbit_col", None): "Bits carry the number, not the length: leading zeros are lost",
    ("arrays", "enum_arr", None): "an array of an enum is sent as NULL",
    ("arrays", "int4_2d", None): "a multi-dimensional array is sent flattened or as Java object names",
    ("arrays", "text_2d", None): "a multi-dimensional array is sent flattened or as Java object names",
    ("arrays", "time_arr", None): "times inside arrays are sent in milliseconds",
    ("arrays", "timetz_arr", None): "times inside arrays are sent in milliseconds",
}
"""Values the connector itself does not carry exactly (docs/types.md): not the loader's to fix.
A row number of None stands for every row."""

SNAPSHOT_NULLS = {("others", "lsn_col"), ("others", "tsquery_col"), ("others", "multirange_col")}
"""Types the connector's snapshot reads as NULL (its WAL events carry their text)."""


SNAPSHOT_ERA = {("times", "date_col"), ("arrays", "date_arr")}
"""Dates the connector's snapshot reads without their era (4713 BC arrives as 4713 AD)."""


SPECIAL_NULLS = {("arrays", "num_arr"), ("arrays", "dec_arr")}
"""Numeric arrays the connector sends as NULL when an element is NaN or an infinity."""


def lost(table: str, column: str, row: int | None, value, text: str | None) -> bool:
    if (table, column) in SNAPSHOT_NULLS and value is None:
        return True
    if (table, column) in SPECIAL_NULLS and value is None and text and ("NaN" in text or "Infinity" in text):
        return True
    if (table, column) in SNAPSHOT_ERA and text and " BC" in text:
        return text.replace('"', "").split(" BC")[0][-10:] in str(value)
    return (table, column, None) in CONNECTOR_LOSSES or (table, column, row) in CONNECTOR_LOSSES


def _messages(step: str) -> list:
    return [as_message(json.loads(line)) for line in (TYPES / f"{step}.jsonl").read_text().splitlines()]


def _expected(step: str) -> dict[str, list[dict]]:
    return json.loads((TYPES / "expected_rows.json").read_text())[step]


def land(settings, steps: list[str]) -> Batch:
    warehouse = Warehouse(settings)
    _, columns = warehouse.read_state()
    decoder = Decoder(Catalog(columns))
    dead = []
    for step in steps:
        batch = Batch()
        decoder.decode(_messages(step), batch)
        dead += batch.dead
        warehouse.land(prepare(batch, decoder.catalog.tables, set()))
    assert not dead, [d.reason for d in dead]
    return batch


def raw_types(conn, table: str, raw_table: str | None = None) -> dict[str, str]:
    return dict(
        conn.execute(
            "select column_name, data_type from duckdb_columns() where schema_name = 'raw' and table_name = ?",
            [raw_table or f"{type_tables.DATABASE}__{table}"],
        ).fetchall()
    )


def fold(conn, table: str, raw_table: str | None = None) -> dict[tuple, dict]:
    """The changelog folded to current rows, as staging does: by key, TOAST carried, deletes honoured."""
    raw_table = raw_table or f"{type_tables.DATABASE}__{table}"
    types = raw_types(conn, table, raw_table)
    columns = [c for c in types if not c.startswith("_")]
    select = ", ".join([fetch_sql(c, types[c]) for c in columns] + ["_op", "_unavailable", "_old_key"])
    result = conn.execute(f'select {select} from raw."{raw_table}" order by _lsn, _offset')
    names = [d[0] for d in result.description]
    state: dict[tuple, dict] = {}
    last: dict[tuple, dict] = {}
    keys = KEYS[table]
    for event in (dict(zip(names, row)) for row in result.fetchall()):
        key = tuple(event[k] for k in keys)
        if event["_op"] == "d":
            state.pop(key, None)
            continue
        old_key = json.loads(event["_old_key"] or "{}")
        previous = last.get((old_key["id"],) if "id" in old_key and keys == ["id"] else key)
        row = {c: event[c] for c in columns}
        for column in event["_unavailable"] or []:
            row[column] = previous[column]
        state[key] = last[key] = row
    return state


@pytest.mark.parametrize("upto", range(len(STEPS)), ids=STEPS)
def test_every_cell_is_what_postgres_holds(loader_settings, upto):
    land(loader_settings, STEPS[: upto + 1])
    expected = _expected(STEPS[upto])
    with duckdb.connect(str(loader_settings.warehouse), read_only=True) as conn:
        conn.execute("set TimeZone = 'UTC'")
        for table in type_tables.TABLES:
            types = raw_types(conn, table)
            state = fold(conn, table)
            assert len(state) == len(expected[table]), table
            rows = {key[0]: row for key, row in state.items()}  # id, or the keys table's k_int
            for want in expected[table]:
                first = int(want[KEYS[table][0]])
                got = rows[first]
                for column, text in want.items():
                    if column in NOT_SENT.get(table, ()):
                        assert column not in types, (table, column)
                    elif not lost(table, column, first % 100, got[column], text):
                        assert matches(column, types[column], got[column], text), (
                            table,
                            first,
                            column,
                            got[column],
                            text,
                        )


def test_timetz_arrives_in_utc():
    """Debezium sends a timetz as the same time of day in UTC; the offset itself is not sent."""
    assert timetz_utc("00:00:00+15:59") == "08:01:00+00"
    assert timetz_utc("23:59:59.999999-15:59") == "15:58:59.999999+00"


def test_a_type_the_loader_does_not_map_lands_as_json_text_and_is_recorded(loader_settings, caplog):
    """The capture's connector sends hstore as a Connect map: the row lands, that column as JSON text."""
    land(loader_settings, STEPS)
    with duckdb.connect(str(loader_settings.warehouse), read_only=True) as conn:
        assert raw_types(conn, "others")["hstore_col"] == "JSON"
        recorded = conn.execute(
            "select raw_table, column_name, topic, connect_type, first_batch_id from loader.unmapped_columns"
        ).fetchall()
    table = f"{type_tables.DATABASE}__others"
    assert recorded == [(table, "hstore_col", f"{type_tables.DATABASE}.public.others", "map of string to string", 1)]
    assert f"raw.{table}.hstore_col: the loader does not map map of string to string" in caplog.text
