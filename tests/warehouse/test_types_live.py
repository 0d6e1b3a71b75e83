"""On the real stack: while `mirador run` runs, tables of every type (`cdc/type_tables.py`) are created in
a service database, written, updated, TOASTed, re-keyed and deleted from; raw holds every value
exactly as Postgres prints it, and nothing went to the dead letters."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import uuid

import duckdb
import psycopg
import pytest
from psycopg import sql
from psycopg.types.string import TextLoader

from cdc import postgres, type_tables
from mirador.home import PROJECT_ROOT
from tests.warehouse.commands import MIRADOR
from tests.warehouse.test_type_fixtures import KEYS, NOT_SENT, fold, lost, raw_types
from tests.warehouse.type_values import matches
from warehouse.publish import current_publication

pytestmark = pytest.mark.stack

SERVICE = "customers"
_TABLE = re.compile(
    r"\b(create table|alter table|insert into|update|delete from) (" + "|".join(type_tables.TABLES) + r")\b"
)


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _renamed(statement: str, tag: str) -> str:
    """A statement of the type tables, for this test's own tables, enum and domain."""
    statement = _TABLE.sub(lambda m: f"{m[1]} t{tag}_{m[2]}", statement)
    return re.sub(r"\b(mood|positive_int)\b", rf"\1_{tag}", statement)


def _text_rows(conn: psycopg.Connection, table: str) -> list[dict]:
    query = sql.SQL("select * from {} order by 1").format(sql.Identifier(table))
    with conn.cursor() as cur:
        cur.execute(query)
        for column in cur.description:
            cur.adapters.register_loader(column.type_code, TextLoader)
        cur.execute(query)
        names = [c.name for c in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def test_a_table_of_every_type_lands_exactly_while_mirador_runs(pipeline_env, stack_settings):
    env, _, home = pipeline_env
    tag = uuid.uuid4().hex[:6]
    tables = {t: f"t{tag}_{t}" for t in type_tables.TABLES}
    with psycopg.connect(postgres.superuser_dsn(stack_settings, SERVICE), autocommit=True) as conn:
        for extension in type_tables.EXTENSIONS:
            conn.execute(sql.SQL("create extension if not exists {}").format(sql.Identifier(extension)))
    # Only this test's tables (and the service's markers and heartbeats, for its watermark): the loader
    # need not read the shared topics' whole history first.
    topics = [
        rf"^{SERVICE}\.public\.t{tag}_.+",
        rf"^{SERVICE}\.(transaction|mirador\.heartbeat)$",
        f"__debezium-heartbeat.{SERVICE}",
    ]
    env = {**env, "MIRADOR_LOADER_TOPICS": json.dumps(topics), "MIRADOR_LOADER_DISCOVER_SECONDS": "1"}
    run_log = home / "run.log"
    with run_log.open("w") as out:
        run = subprocess.Popen(
            [MIRADOR, "run"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    conn = psycopg.connect(postgres.service_dsn(stack_settings, SERVICE), autocommit=True)
    try:
        conn.execute("set TimeZone = 'UTC'")
        conn.execute("set DateStyle = 'ISO, YMD'")
        conn.execute(_renamed(type_tables.DDL, tag))
        for statement in type_tables.snapshot_statements():
            conn.execute(_renamed(statement, tag))
        for _, statements, _ in type_tables.STEPS:
            with conn.transaction():
                for statement in statements:
                    conn.execute(_renamed(statement, tag))
        expected = {t: _text_rows(conn, name) for t, name in tables.items()}
        written = _lsn(conn.execute("select pg_current_wal_lsn()::text").fetchone()[0])

        published = home / "warehouse" / "published"
        deadline = time.monotonic() + 150
        while not ((p := current_publication(published)) and (p.watermark.get(SERVICE, {}).get("lsn") or 0) >= written):
            if time.monotonic() > deadline:
                log = run_log.read_text()
                pytest.fail(
                    "never caught up: "
                    + "".join(line for line in log.splitlines(True) if "assigned" in line or "watermark" in line)[
                        -2000:
                    ]
                    + log[-1500:]
                )
            assert run.poll() is None, run_log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=180)
        for name in tables.values():
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(name)))
        conn.execute(f"drop domain if exists positive_int_{tag}; drop type if exists mood_{tag}")
        conn.close()
    assert run.returncode == 0, run_log.read_text()[-3000:]
    # whatever the last cycle had not landed yet (the watermark can pass before a new topic is read)
    drained = subprocess.run([MIRADOR, "load", "--once", "--no-progress"], env=env, cwd=PROJECT_ROOT, timeout=120)
    assert drained.returncode == 0

    with duckdb.connect(str(home / "warehouse" / "mirador.duckdb"), read_only=True) as wh:
        wh.execute("set TimeZone = 'UTC'")
        dead = wh.execute(
            "select topic, reason from loader.dead_letters where topic like ?", [f"{SERVICE}.public.t{tag}_%"]
        ).fetchall()
        assert dead == []
        compared = 0
        for family, name in tables.items():
            raw_table = f"{SERVICE}__{name}"
            types = raw_types(wh, family, raw_table)
            rows = {key[0]: row for key, row in fold(wh, family, raw_table).items()}
            assert len(rows) == len(expected[family]), family
            for want in expected[family]:
                first = int(want[KEYS[family][0]])
                got = rows[first]
                for column, text in want.items():
                    if column in NOT_SENT.get(family, ()):
                        assert column not in types, (family, column)
                    elif not lost(family, column, first % 100, got[column], text):
                        assert matches(column, types[column], got[column], text), (family, first, column, got[column])
                        compared += 1
    assert compared > 250  # cells of every type compared (290 when written)
