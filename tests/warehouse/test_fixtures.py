"""Every captured Debezium message decodes and lands to exactly the value Postgres holds.

The fixtures are real Debezium 3.6.1 output (`cdc/capture.py`); `expected_rows.json` is Postgres's
own text of every row after each capture step. Landing the steps in order into a real DuckDB file and
folding the changelog the way staging will (latest event per key, unchanged TOAST carried forward,
deletes and truncates honoured) must give back exactly those rows.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import duckdb
import pytest

from tests.warehouse.captures import STEPS, as_message, captured, expected_rows, messages
from warehouse.ingest.catalog import Catalog
from warehouse.ingest.decode import Batch, Decoder
from warehouse.ingest.frames import prepare
from warehouse.ingest.land import Warehouse

TABLE = "raw.fixtures__all_types"


def land_steps(settings, steps: list[str]) -> Warehouse:
    warehouse = Warehouse(settings)
    _, columns = warehouse.read_state()
    decoder = Decoder(Catalog(columns))
    for step in steps:
        batch = Batch()
        decoder.decode(messages(step), batch)
        assert not batch.dead, [d.reason for d in batch.dead]
        warehouse.land(prepare(batch, decoder.catalog.tables, set()))
    return warehouse


def query(settings, sql: str, params: list | None = None) -> list[dict]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        result = conn.execute(sql, params or [])
        names = [d[0] for d in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]


def fold(events: list[dict]) -> dict[int, dict]:
    """The changelog folded to current rows, as staging will: by key, TOAST carried, deletes honoured."""
    state: dict[int, dict] = {}
    last: dict[int, dict] = {}  # latest full row per key, kept through the delete half of a key change
    for event in events:
        op = event["_op"]
        if op == "t":
            state.clear()
        elif op == "d":
            state.pop(event["id"], None)
        else:
            old_key = json.loads(event["_old_key"] or "{}").get("id")
            previous = last.get(event["id"]) if old_key is None else last.get(old_key)
            row = {k: v for k, v in event.items() if not k.startswith("_")}
            for column in event["_unavailable"] or []:
                row[column] = previous[column]
            state[event["id"]] = last[event["id"]] = row
    return state


def postgres_interval(duckdb_text: str) -> str:
    """DuckDB's text of an interval in Postgres's words (`mons` for `months`)."""
    return re.sub(r"\bmonths?\b", lambda m: "mons" if m[0] == "months" else "mon", duckdb_text)


def postgres_text(column: str, value) -> str | None:
    """A DuckDB value as Postgres's `to_jsonb(row)` text prints it (the form of expected_rows.json)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def state_after(settings, upto: int) -> tuple[dict[int, dict], dict[int, dict]]:
    land_steps(settings, STEPS[: upto + 1])
    events = f"select * replace (interval_col::varchar as interval_col) from {TABLE} order by _lsn, _offset"
    state = fold(query(settings, events))
    return state, {int(row["id"]): row for row in expected_rows()[STEPS[upto]]}


@pytest.mark.parametrize("upto", range(len(STEPS)), ids=STEPS)
def test_rows_after_each_step_are_what_postgres_holds(loader_settings, upto):
    state, expected = state_after(loader_settings, upto)
    assert sorted(state) == sorted(expected)
    for key, want in expected.items():
        got = state[key]
        for column, text in want.items():
            value = got[column]
            if column == "interval_col" and text is not None:
                assert postgres_interval(value) == text, (key, column)  # interval.handling.mode=string
            else:
                assert postgres_text(column, value) == text, (key, column)


def test_null_in_a_column_with_a_default_stays_null(loader_settings):
    state, expected = state_after(loader_settings, STEPS.index("widen_column"))
    assert state[7]["note"] == expected[7]["note"]


def test_every_capture_decodes_typed_with_no_dead_letter(loader_settings):
    land_steps(loader_settings, STEPS + ["heartbeat"])
    types = {
        r["column_name"]: r["data_type"]
        for r in query(
            loader_settings,
            "select column_name, data_type from duckdb_columns() where table_name = 'fixtures__all_types'",
        )
    }
    assert {
        k: types[k]
        for k in (
            "id",
            "small_col",
            "int_col",
            "big_col",
            "num_col",
            "dec_col",
            "bool_col",
            "date_col",
            "time_col",
            "ts_col",
            "tstz_col",
            "interval_col",
            "uuid_col",
            "json_col",
            "tags",
            "bytes_col",
            "mood_col",
            "note",
        )
    } == {
        "id": "INTEGER",
        "small_col": "SMALLINT",
        "int_col": "BIGINT",
        "big_col": "BIGINT",
        "num_col": "VARCHAR",
        "dec_col": "DECIMAL(12,2)",
        "bool_col": "BOOLEAN",
        "date_col": "DATE",
        "time_col": "TIME",
        "ts_col": "TIMESTAMP",
        "tstz_col": "TIMESTAMP WITH TIME ZONE",
        "interval_col": "INTERVAL",
        "uuid_col": "UUID",
        "json_col": "JSON",
        "tags": "VARCHAR[]",
        "bytes_col": "BLOB",
        "mood_col": "VARCHAR",
        "note": "VARCHAR",
    }
    counts = query(loader_settings, f"select _op, _snapshot, count(*) as n from {TABLE} group by all order by all")
    assert [(c["_op"], c["_snapshot"], c["n"]) for c in counts] == [
        ("c", False, 6),
        ("d", False, 2),
        ("r", True, 2),
        ("t", False, 1),
        ("u", False, 3),
    ]


def test_metadata_columns_carry_the_source_position(loader_settings):
    land_steps(loader_settings, ["snapshot", "insert"])
    row = query(loader_settings, f"select * from {TABLE} where _op = 'c'")[0]
    source = json.loads(captured("insert")[0]["value"])["payload"]["source"]
    assert (row["_lsn"], row["_seq"], row["_txid"]) == (source["lsn"], source["sequence"], source["txId"])
    assert row["_commit_ts"] == datetime.fromtimestamp(0, row["_commit_ts"].tzinfo) + timedelta(
        microseconds=source["ts_us"]
    )
    assert (row["_topic"], row["_partition"], row["_offset"]) == ("fixtures.public.all_types", 0, 2)
    assert row["_deleted"] is False and row["_unavailable"] is None and row["_batch_id"] == 2


def test_unchanged_toast_is_null_and_named_not_the_placeholder(loader_settings):
    land_steps(loader_settings, STEPS[:3])
    row = query(loader_settings, f"select big_text, _unavailable from {TABLE} where _op = 'u'")[0]
    assert row == {"big_text": None, "_unavailable": ["big_text"]}
    assert not query(loader_settings, f"select 1 from {TABLE} where big_text like '%debezium_unavailable%'")


def test_key_change_lands_as_delete_then_create_with_the_old_key(loader_settings):
    land_steps(loader_settings, STEPS[:5])
    rows = query(
        loader_settings,
        f"select _op, _deleted, id, text_col, _old_key, _lsn, _seq from {TABLE} where _batch_id = 5 order by _offset",
    )
    assert [(r["_op"], r["_deleted"], r["id"], r["_old_key"]) for r in rows] == [
        ("d", True, 3, None),
        ("c", False, 30, '{"id":3}'),
    ]
    assert rows[0]["text_col"] is None, "a delete keeps only the key columns"
    assert (rows[0]["_lsn"], rows[0]["_seq"]) == (rows[1]["_lsn"], rows[1]["_seq"]), "told apart by key"


def test_delete_keeps_the_key_and_its_tombstone_is_skipped(loader_settings):
    land_steps(loader_settings, STEPS[:6])
    rows = query(loader_settings, f"select * from {TABLE} where _batch_id = 6")
    assert len(rows) == 1 and rows[0]["_op"] == "d" and rows[0]["_deleted"] and rows[0]["id"] == 1
    assert all(v is None for k, v in rows[0].items() if not k.startswith("_") and k != "id")
    batch = query(loader_settings, "select messages, events, tombstones from loader.batches where batch_id = 6")
    assert batch == [{"messages": 4, "events": 1, "tombstones": 1}]


def test_truncate_is_recorded_for_staging(loader_settings):
    land_steps(loader_settings, STEPS)
    rows = query(loader_settings, f"select _op, id, _lsn from {TABLE} where _op = 't'")
    assert len(rows) == 1 and rows[0]["id"] is None and rows[0]["_lsn"] is not None


def test_redelivered_events_are_recognisable_by_lsn_sequence_and_key(loader_settings):
    """After a connector restart Debezium sends some events again, at new offsets: staging drops them."""
    warehouse = land_steps(loader_settings, STEPS[:7])
    decoder = Decoder(Catalog(warehouse.read_state()[1]))
    batch = Batch()
    resent = [
        r
        for step in ("key_change", "delete", "transaction")
        for r in captured(step)
        if r["topic"] == "fixtures.public.all_types"
    ]
    decoder.decode([as_message(r, offset=r["offset"] + 1000) for r in resent], batch)
    warehouse.land(prepare(batch, decoder.catalog.tables, set()))
    rows = query(loader_settings, f"select count(*) as n, count(distinct (_lsn, _seq, id, _op)) as events from {TABLE}")
    assert rows == [{"n": 17, "events": 11}]


def test_a_batch_already_landed_lands_nothing_again(loader_settings):
    """A zombie loader, or a read from older offsets: the positions stored with the rows keep offsets unique."""
    warehouse = land_steps(loader_settings, STEPS[:4])
    decoder = Decoder(Catalog(warehouse.read_state()[1]))
    batch = Batch()
    decoder.decode(messages("update_toast_unchanged") + messages("update") + messages("key_change"), batch)
    landed = warehouse.land(prepare(batch, decoder.catalog.tables, set()))
    assert (landed.events, landed.already_landed) == (2, 2)
    rows = query(loader_settings, f"select count(*) as n, count(distinct _offset) as offsets from {TABLE}")
    assert rows == [{"n": 7, "offsets": 7}]


def test_transaction_markers_and_heartbeats_give_each_service_a_source_watermark(loader_settings):
    land_steps(loader_settings, STEPS + ["heartbeat"])
    markers = query(loader_settings, "select status, count(*) as n from loader.transactions group by 1 order by 1")
    assert markers == [{"status": "BEGIN", "n": 10}, {"status": "END", "n": 10}]
    messages = captured("heartbeat")
    end = next(json.loads(m["value"])["payload"] for m in reversed(messages) if m["topic"].endswith(".transaction"))
    progress = query(loader_settings, "select * from loader.source_progress")[0]
    assert progress["service"] == "fixtures"
    assert progress["last_lsn"] == int(end["id"].split(":")[1])
    beat = next(
        json.loads(m["value"])["payload"]["source"] for m in messages if m["topic"].endswith(".mirador.heartbeat")
    )
    assert progress["last_commit_ts"].timestamp() == pytest.approx(beat["ts_us"] / 1e6, abs=1e-6)
    assert query(loader_settings, "select count(*) as n from raw.fixtures__mirador__heartbeat") == [{"n": 1}]


def test_each_raw_tables_primary_key_is_recorded_and_follows_a_change(loader_settings):
    """`loader.tables` holds each raw table's key columns, as the key of Debezium's deletes gives them."""
    keys = "select key_columns from loader.tables where raw_table = 'fixtures__all_types'"
    land_steps(loader_settings, STEPS[:2])
    assert query(loader_settings, keys) == [{"key_columns": None}]  # no delete yet
    land_steps(loader_settings, STEPS[2 : STEPS.index("delete") + 1])
    assert query(loader_settings, keys) == [{"key_columns": ["id"]}]
    with duckdb.connect(str(loader_settings.warehouse)) as conn:  # as if the key had been another column
        conn.execute("update loader.tables set key_columns = ['code'] where raw_table = 'fixtures__all_types'")
    land_steps(loader_settings, ["delete"])  # landed before: no rows again, but its key is the current one
    assert query(loader_settings, keys) == [{"key_columns": ["id"]}]
