"""Capture real Debezium messages into JSONL fixtures: `mirador stack capture` (`make fixtures`).

A scratch database `fixtures`, prepared exactly like a service database and captured by a connector
made from a service's config, takes a table of every column type the loader must decode through
snapshot, insert, update (with an untouched TOASTed column), primary-key change, delete, truncate,
a multi-row transaction and schema changes. Each step's messages, with their exact key, value and
headers, go to `<out>/<step>.jsonl`; Postgres's own text of every row after each step goes to
`<out>/expected_rows.json`, so tests can check the decoded values against the source.

A second scratch database, `fixtures_types`, takes a table per family of every type the connector
documents (`cdc/type_tables.py`) through snapshot, insert, update, update leaving TOASTed values
alone, key change and delete, into `<out>/types/`; its `expected_rows.json` holds each value as the
type's own output function prints it (session TimeZone UTC, DateStyle ISO).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient
from psycopg import sql
from psycopg.types.string import TextLoader

from cdc import connect, postgres, type_tables
from cdc.config import StackSettings
from cdc.errors import StackError

log = logging.getLogger(__name__)

DATABASE = "fixtures"
TOPIC = f"{DATABASE}.public.all_types"
HEARTBEAT_TOPIC = f"{DATABASE}.mirador.heartbeat"

SCHEMA_DDL = """
create type mood as enum ('happy', 'sad', 'ok');
create table all_types (
    id            integer primary key,
    small_col     smallint,
    int_col       integer,
    big_col       bigint,
    num_col       numeric,
    dec_col       numeric(12, 2),
    text_col      text,
    varchar_col   varchar(40),
    bool_col      boolean,
    date_col      date,
    time_col      time,
    ts_col        timestamp,
    tstz_col      timestamptz,
    interval_col  interval,
    uuid_col      uuid,
    json_col      jsonb,
    tags          text[],
    bytes_col     bytea,
    mood_col      mood,
    big_text      text
);
-- Out of line and uncompressed, so an update that leaves it alone sends Debezium's placeholder.
alter table all_types alter column big_text set storage external;
"""

INSERT = """
insert into all_types values (
    %(id)s, %(small)s, %(int)s, %(big)s, %(num)s, %(dec)s, %(text)s, %(varchar)s, %(bool)s,
    %(date)s, %(time)s, %(ts)s, %(tstz)s, %(interval)s, %(uuid)s, %(json)s, %(tags)s, %(bytes)s,
    %(mood)s, %(big_text)s
)
"""

INSERT_WITH_NOTE = INSERT.replace("%(big_text)s\n)", "%(big_text)s, %(note)s\n)")
"""The same row after `add_column` added `note`."""


def _row(id_: int, seed: int) -> dict:
    """A row of edge values: negatives, high precision, microseconds, pre-1970, unicode, NULL in arrays."""
    return {
        "id": id_,
        "small": -32768 + seed,
        "int": 2147483647 - seed,
        "big": -9223372036854775808 + seed,
        "num": f"-12345678901234567890.1234567890{seed}",
        "dec": f"-{seed}234567890.05",
        "text": f'ünïcødé "quoted" line\nbreak {seed}',
        "varchar": f"varchar {seed}",
        "bool": seed % 2 == 0,
        "date": f"19{60 + seed}-02-28",
        "time": f"23:59:59.12345{seed}",
        "ts": f"1969-12-31 23:59:59.99999{seed}",
        "tstz": f"2026-03-29 01:30:00.12345{seed}+02",
        "interval": f"1 year 2 mons {seed} days 04:05:06.789",
        "uuid": str(uuid.UUID(int=seed + 1)),
        "json": json.dumps({"nested": {"list": [1, 2.5, None, "x"]}, "seed": seed}),
        "tags": ["a", None, 'with "quote"', f"t{seed}"],
        "bytes": bytes([0, 255, seed % 256]),
        "mood": ("happy", "sad", "ok")[seed % 3],
        "big_text": "".join(f"{i:05d}|" for i in range(2000)),
    }


NULL_ROW = {key: None for key in _row(0, 0)} | {"id": 2}

STEPS: list[tuple[str, list[tuple[str, dict | None]], int]] = [
    # (step, statements in one transaction, messages expected on the table topic)
    ("insert", [(INSERT, _row(3, 3))], 1),
    ("update_toast_unchanged", [("update all_types set text_col = 'changed', int_col = 7 where id = 3", None)], 1),
    ("update", [("update all_types set big_text = repeat('z', 9000), dec_col = 0.10 where id = 3", None)], 1),
    ("key_change", [("update all_types set id = 30 where id = 3", None)], 3),
    ("delete", [("delete from all_types where id = 1", None)], 2),
    (
        "transaction",
        [(INSERT, _row(4, 4)), (INSERT, _row(5, 5)), ("update all_types set small_col = 1 where id = 4", None)],
        3,
    ),
    (
        "add_column",
        [
            ("alter table all_types add column note text default 'new'", None),
            (INSERT_WITH_NOTE, _row(6, 6) | {"note": "added"}),
        ],
        1,
    ),
    (
        "widen_column",
        [
            ("alter table all_types alter column int_col type bigint", None),
            (INSERT_WITH_NOTE, _row(7, 7) | {"int": 9_000_000_000, "note": None}),
        ],
        1,
    ),
    ("truncate", [("truncate all_types", None)], 1),
]


def capture_fixtures(settings: StackSettings, out: Path) -> dict[Path, int]:
    """Drive both scratch databases through every change kind and write what Debezium sent."""
    written = _capture_all_types(settings, out)
    written |= _capture_type_tables(settings, out / "types")
    return written


def _connector(settings: StackSettings, database: str) -> tuple[str, dict[str, str]]:
    """A service's connector config, pointed at a scratch database."""
    name = f"mirador-{database}"
    config = connect.load_config(connect.connector_files(("customers",))[0], connect.placeholders(settings))
    config |= {"name": name, "database.dbname": database, "topic.prefix": database, "slot.name": f"mirador_{database}"}
    return name, config


def _capture_all_types(settings: StackSettings, out: Path) -> dict[Path, int]:
    """Drive `all_types` through every change kind and write what Debezium sent. Needs `stack up`."""
    name, config = _connector(settings, DATABASE)
    _reset(settings, name, config, DATABASE)
    try:
        with psycopg.connect(postgres.service_dsn(settings, DATABASE), autocommit=True) as conn:
            conn.execute(SCHEMA_DDL)
            conn.execute(INSERT, _row(1, 1))
            conn.execute(INSERT, NULL_ROW)
            expected = {"snapshot": _rows(conn)}
            connect.register(settings, config)
            connect.wait_running(settings, name, settings.startup_timeout)
            written: dict[Path, int] = {}
            with _consumer(settings, DATABASE) as consumer:
                snapshot = _drain(consumer, {TOPIC: 2}, DATABASE)
                written[_write(out, "snapshot", snapshot)] = len(snapshot)
                for step, statements, count in STEPS:
                    with conn.transaction():
                        for statement, params in statements:
                            conn.execute(statement, params)
                    expected[step] = _rows(conn)
                    messages = _drain(consumer, {TOPIC: count}, DATABASE)
                    written[_write(out, step, messages)] = len(messages)
                heartbeat = _drain(consumer, {HEARTBEAT_TOPIC: 1}, DATABASE, timeout=30)
                written[_write(out, "heartbeat", heartbeat)] = len(heartbeat)
        (out / "expected_rows.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
        return written
    finally:
        _reset(settings, name, config, DATABASE)


def _capture_type_tables(settings: StackSettings, out: Path) -> dict[Path, int]:
    """Drive the type tables through snapshot, insert, update, TOAST, key change and delete."""
    database = type_tables.DATABASE
    name, config = _connector(settings, database)
    # hstore as a Connect map, a schema the loader does not map: the fixtures carry an unmapped column
    config["hstore.handling.mode"] = "map"
    topics = {table: f"{database}.public.{table}" for table in type_tables.TABLES}
    _reset(settings, name, config, database)
    try:
        with psycopg.connect(postgres.superuser_dsn(settings, database), autocommit=True) as conn:
            for extension in type_tables.EXTENSIONS:
                conn.execute(sql.SQL("create extension if not exists {}").format(sql.Identifier(extension)))
        with psycopg.connect(postgres.service_dsn(settings, database), autocommit=True) as conn:
            conn.execute("set TimeZone = 'UTC'")
            conn.execute("set DateStyle = 'ISO, YMD'")
            conn.execute(type_tables.DDL)
            for statement in type_tables.snapshot_statements():
                conn.execute(statement)
            expected = {"snapshot": _text_rows(conn)}
            connect.register(settings, config)
            connect.wait_running(settings, name, settings.startup_timeout)
            written: dict[Path, int] = {}
            with _consumer(settings, database) as consumer:
                counts = {topics[t]: len(type_tables.snapshot_rows(t)) for t in type_tables.TABLES}
                snapshot = _drain(consumer, counts, database)
                written[_write(out, "snapshot", snapshot)] = len(snapshot)
                for step, statements, per_table in type_tables.STEPS:
                    with conn.transaction():
                        for statement in statements:
                            conn.execute(statement)
                    expected[step] = _text_rows(conn)
                    messages = _drain(consumer, {topics[t]: n for t, n in per_table.items()}, database)
                    written[_write(out, step, messages)] = len(messages)
        (out / "expected_rows.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
        return written
    finally:
        _reset(settings, name, config, database)


def _text_rows(conn: psycopg.Connection) -> dict[str, list[dict]]:
    """Each type table's rows, every value as its type's output function prints it (or None)."""
    rows = {}
    for table in type_tables.TABLES:
        query = sql.SQL("select * from {} order by 1").format(sql.Identifier(table))
        with conn.cursor() as cur:
            cur.execute(query)  # once for the column types, then again with every value loaded as text
            for column in cur.description:
                cur.adapters.register_loader(column.type_code, TextLoader)
            cur.execute(query)
            names = [c.name for c in cur.description]
            rows[table] = [dict(zip(names, row)) for row in cur.fetchall()]
    return rows


def _reset(settings: StackSettings, connector: str, config: dict[str, str], database: str) -> None:
    """Remove the connector with its offsets, its topics, its slot and the scratch database."""
    postgres.bootstrap(settings, services=(database,))  # Connect validates a config against its database
    connect.reset(settings, connector, config)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    topics = [
        t
        for t in admin.list_topics(timeout=10).topics
        if t.startswith(f"{database}.") or t == f"__debezium-heartbeat.{database}"
    ]
    for future in admin.delete_topics(topics).values() if topics else []:
        future.result()
    with psycopg.connect(postgres.superuser_dsn(settings), autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while conn.execute(
            "select 1 from pg_replication_slots where slot_name = %s and active", (f"mirador_{database}",)
        ).fetchone():
            if time.monotonic() > deadline:
                raise StackError(f"slot mirador_{database} is still in use after its connector was deleted")
            time.sleep(0.5)
        conn.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = %s",
            (f"mirador_{database}",),
        )
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
    postgres.bootstrap(settings, services=(database,))


def _rows(conn: psycopg.Connection) -> list[dict]:
    """Postgres's own text for every column of every row, the truth decoded values are checked against."""
    query = (
        "select jsonb_object_agg(key, value) from all_types t, jsonb_each_text(to_jsonb(t)) group by t.id order by t.id"
    )
    return [row[0] for row in conn.execute(query)]


class _Reader:
    """A consumer that hands each message over once: without commits, a rebalance (a topic created
    mid-capture joins the subscription) starts every partition over from the earliest offset."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer, self.seen = consumer, set()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.consumer.close()

    def poll(self, timeout: float):
        msg = self.consumer.poll(timeout)
        if msg is None or msg.error():
            return msg
        position = (msg.topic(), msg.partition(), msg.offset())
        if position in self.seen:
            return None
        self.seen.add(position)
        return msg


def _consumer(settings: StackSettings, database: str) -> _Reader:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"mirador-capture-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.subscribe([f"^{database}\\..*", f"__debezium-heartbeat.{database}"])
    return _Reader(consumer)


def _drain(consumer: _Reader, counts: dict[str, int], database: str, timeout: float = 60) -> list[dict]:
    """Messages until `counts` arrived on their topics and the END marker of each of their transactions."""
    transactions = f"{database}.transaction"
    messages: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        step = _of_step(messages, set(counts), database)
        data = [m for m in step if m["topic"] in counts]
        ended = {_tx(m, database) for m in step if m["topic"] == transactions and _payload(m)["status"] == "END"}
        have = {topic: sum(m["topic"] == topic for m in data) for topic in counts}
        if all(have[t] >= n for t, n in counts.items()) and {_tx(m, database) for m in data} <= ended | {None}:
            return step
        if time.monotonic() > deadline:
            raise StackError(f"expected {counts} messages with their transactions' ends, got {have} in {timeout:.0f}s")
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                continue
            raise StackError(f"consuming fixtures failed: {msg.error()}")
        messages.append(_record(msg))


def _of_step(messages: list[dict], topics: set[str], database: str) -> list[dict]:
    """The step's messages on `topics`, with the BEGIN/END markers of their own transactions only.

    Heartbeat action queries run transactions of their own every few seconds; those markers are noise.
    """
    transactions = f"{database}.transaction"
    data = [m for m in messages if m["topic"] in topics]
    ids = {_tx(m, database) for m in data} - {None}
    markers = [m for m in messages if m["topic"] == transactions and _tx(m, database) in ids]
    if f"{database}.mirador.heartbeat" in topics:
        data += [m for m in messages if m["topic"] == f"__debezium-heartbeat.{database}"][:1]
    return sorted(markers + data, key=lambda m: (m["topic"], m["offset"]))


def _tx(message: dict, database: str) -> str | None:
    """The Postgres transaction id of a change or marker (Debezium ids are `txId:lsn`)."""
    payload = _payload(message) or {}
    tx_id = (
        payload.get("id")
        if message["topic"] == f"{database}.transaction"
        else (payload.get("transaction") or {}).get("id")
    )
    return tx_id.split(":")[0] if tx_id else None


def _payload(message: dict) -> dict | None:
    return json.loads(message["value"])["payload"] if message["value"] else None


def _record(msg) -> dict:
    def text(raw: bytes | None) -> str | None:
        return None if raw is None else raw.decode("utf-8")

    return {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": msg.timestamp()[1],
        "headers": [[k, text(v)] for k, v in (msg.headers() or [])],
        "key": text(msg.key()),
        "value": text(msg.value()),
    }


def _write(out: Path, step: str, messages: list[dict]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{step}.jsonl"
    path.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages))
    return path
