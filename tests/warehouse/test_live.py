"""The loader on the real stack: Postgres changes reach `raw` with the right values; bad input and
schema changes on a live topic leave the flow running with dead letters counted."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import duckdb
import psycopg
import pytest
from confluent_kafka import Producer

from cdc import postgres
from tests.warehouse.backlog import delete_topics
from warehouse.ingest.configuration import LoaderSettings
from warehouse.ingest.load import Loader

pytestmark = pytest.mark.stack

DATABASE = "inventory"


def settings_for(loader_settings: LoaderSettings, stack_settings, topics: list[str]) -> LoaderSettings:
    return loader_settings.model_copy(
        update={
            "kafka_bootstrap": stack_settings.kafka_bootstrap_servers,
            "loader_topics": topics,
            "loader_group": f"mirador-loader-test-{uuid.uuid4().hex[:8]}",
            "loader_batch_seconds": 0.5,
        }
    )


def load_until(settings: LoaderSettings, done, timeout: float = 90.0) -> list:
    """`load --once` again and again until `done(conn)` holds: Debezium takes a moment to capture."""
    reports, deadline = [], time.monotonic() + timeout
    while True:
        reports.append(Loader(settings).run())
        if settings.warehouse.exists():
            with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
                if done(conn):
                    return reports
        if time.monotonic() > deadline:
            raise AssertionError(f"the loader did not reach the expected state in {timeout:.0f}s")
        time.sleep(1.0)


def count(conn, sql: str) -> int:
    try:
        return conn.execute(sql).fetchone()[0]
    except duckdb.CatalogException:
        return 0


@pytest.fixture
def scratch_table(stack_settings):
    """A fresh table in a service database, captured by its connector; dropped with its topic after."""
    tables: list[str] = []

    def make(prefix: str, ddl: str) -> tuple[psycopg.Connection, str]:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        conn.execute(ddl.format(table=name))
        tables.append(name)
        return name

    with psycopg.connect(postgres.service_dsn(stack_settings, DATABASE), autocommit=True) as conn:
        yield conn, make
        for name in tables:
            conn.execute(f"drop table if exists {name}")
    delete_topics(stack_settings.kafka_bootstrap_servers, [f"{DATABASE}.public.{t}" for t in tables])


def test_rows_changed_in_postgres_appear_in_raw_with_their_values(stack_settings, loader_settings, scratch_table):
    conn, make = scratch_table
    table = make(
        "loader_test",
        """create table {table} (
        id integer primary key, name text not null, price numeric(10, 2), quantity bigint, tags text[],
        doc jsonb, seen_at timestamptz, ref uuid, body text)""",
    )
    conn.execute(f"alter table {table} alter column body set storage external")
    body = "x" * 9000
    with conn.transaction():
        conn.execute(
            f"insert into {table} values (1, 'one', 10.50, 3, '{{a,b}}', '{{\"k\": [1, 2]}}', "
            f"'2026-01-02 03:04:05.123456+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', %s)",
            [body],
        )
        conn.execute(f"insert into {table} values (2, 'two', 0.01, -1, null, null, null, null, null)")
        conn.execute(f"insert into {table} values (3, 'three', 99999999.99, 0, '{{}}', '[]', now(), null, 'z')")
    conn.execute(f"update {table} set name = 'uno', price = 11.00 where id = 1")  # body untouched: TOAST
    conn.execute(f"delete from {table} where id = 2")
    conn.execute(f"update {table} set id = 30 where id = 3")
    settings = settings_for(loader_settings, stack_settings, [f"{DATABASE}.public.{table}"])
    load_until(settings, lambda db: count(db, f"select count(*) from raw.{DATABASE}__{table}") >= 7)
    with duckdb.connect(str(settings.warehouse), read_only=True) as db:
        rows = db.execute(
            f"select _op, id, name, price, quantity, tags, doc, seen_at, ref, body, _unavailable, "
            f"_old_key from raw.{DATABASE}__{table} order by _lsn, _offset"
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("c", 1), ("c", 2), ("c", 3), ("u", 1), ("d", 2), ("d", 3), ("c", 30)]
    first = rows[0]
    assert first[2:6] == ("one", Decimal("10.50"), 3, ["a", "b"])
    assert json.loads(first[6]) == {"k": [1, 2]}
    assert first[7].isoformat() == "2026-01-02T03:04:05.123456+00:00"
    assert str(first[8]) == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" and first[9] == body
    assert rows[2][3] == Decimal("99999999.99")
    assert rows[3][2:4] == ("uno", Decimal("11.00")) and rows[3][9] is None and rows[3][10] == ["body"]
    assert rows[4][2] is None, "the delete keeps only the key"
    assert json.loads(rows[6][11]) == {"id": 3}


def test_poison_messages_and_schema_changes_on_a_live_topic(stack_settings, loader_settings, scratch_table):
    conn, make = scratch_table
    table = make("loader_evo", "create table {table} (id integer primary key, n integer, label text)")
    other = make("loader_ok", "create table {table} (id integer primary key, label text)")
    topic = f"{DATABASE}.public.{table}"
    conn.execute(f"insert into {table} values (1, 1, 'first')")
    conn.execute(f"alter table {table} add column extra text")
    conn.execute(f"insert into {table} values (2, 2, 'second', 'added')")
    conn.execute(f"alter table {table} alter column n type bigint")
    conn.execute(f"insert into {table} values (3, 9000000000, 'third', null)")
    settings = settings_for(loader_settings, stack_settings, [topic, f"{DATABASE}.public.{other}"])
    load_until(settings, lambda db: count(db, f"select count(*) from raw.{DATABASE}__{table}") >= 3)

    producer = Producer({"bootstrap.servers": stack_settings.kafka_bootstrap_servers})
    last_value = _last_value(stack_settings, topic)
    unknown = last_value.replace(
        b'"type":"int64","optional":true,"field":"n"', b'"type":"int128","optional":true,"field":"n"'
    )
    assert unknown != last_value
    for poison in (b"\x00\x01 not json", b'{"hello": "world"}', unknown):
        producer.produce(topic, value=poison, key=b'{"id": 99}')
    producer.flush(10)
    conn.execute(f"alter table {table} alter column n type text")  # no raw type holds both: dead letter
    conn.execute(f"insert into {table} values (4, 'four', 'fourth', null)")
    conn.execute(f"insert into {other} values (1, 'still flowing')")

    reports = load_until(
        settings,
        lambda db: (
            count(db, f"select count(*) from raw.{DATABASE}__{other}") >= 1
            and count(db, "select count(*) from loader.dead_letters") >= 4
        ),
    )
    assert sum(r.dead_letters for r in reports) >= 4
    with duckdb.connect(str(settings.warehouse), read_only=True) as db:
        types = dict(
            db.execute(
                "select column_name, data_type from duckdb_columns() where table_name = ?", [f"{DATABASE}__{table}"]
            ).fetchall()
        )
        rows = db.execute(f"select id, n, label, extra from raw.{DATABASE}__{table} order by _offset").fetchall()
        dead = db.execute('select reason, value from loader.dead_letters order by "offset"').fetchall()
    assert types["n"] == "BIGINT" and types["extra"] == "VARCHAR"
    assert rows == [(1, 1, "first", None), (2, 2, "second", "added"), (3, 9_000_000_000, "third", None)]
    reasons = [reason for reason, _ in dead]
    assert reasons[0].startswith("not JSON") and dead[0][1] == b"\x00\x01 not json"
    assert reasons[1].startswith("not a Debezium envelope")
    assert "'int128'" in reasons[2]
    assert "column 'n'" in reasons[3] and "BIGINT" in reasons[3] and "VARCHAR" in reasons[3]


def _last_value(stack_settings, topic: str) -> bytes:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": stack_settings.kafka_bootstrap_servers, "group.id": "peek", "enable.auto.commit": False}
    )
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, end - 1)])
        while True:
            msg = consumer.poll(5)
            if msg is not None and msg.error() is None and msg.value():
                return msg.value()
    finally:
        consumer.close()
