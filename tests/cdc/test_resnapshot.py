"""`mirador resnapshot`: a table read again while it changes, and the views still right afterwards.

The race test holds two transactions open across the snapshot (an update and a delete written before
the table is read, committed after its chunks closed), and updates and deletes other rows while the
snapshot runs, with shop traffic beside. Debezium gives those two changes an older LSN than the reads
they follow, so staging must order by commit position, not by LSN, or the views go back in time.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
import uuid

import duckdb
import psycopg
import pytest

from cdc import postgres
from cdc import resnapshot as ops
from mirador.home import PROJECT_ROOT
from tests.warehouse.commands import MIRADOR, verify
from warehouse.publish import current_publication

SIGNAL = "mirador.debezium_signal"


def _resnapshot(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MIRADOR, "resnapshot", *args], env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )


def test_a_target_that_is_not_service_dot_table_is_a_usage_error():
    for target in ("customers", "nowhere.customers", "customers.public.customers"):
        result = _resnapshot(target)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "customers, orders, invoices, inventory" in result.stderr


@pytest.mark.stack
def test_an_unknown_table_names_the_tables_there_are(stack_settings):
    result = _resnapshot("orders.customers")
    assert result.returncode == 2, result.stderr
    assert "order_lines, orders" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.stack
def test_connect_down_is_one_line_and_transient(stack_settings):
    env = os.environ | {"MIRADOR_CONNECT_URL": "http://127.0.0.1:9"}
    result = _resnapshot("customers.customers", env=env)
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "Kafka Connect" in result.stderr


@pytest.mark.stack
def test_signal_table_is_published_and_debezium_may_only_insert_into_it(stack_settings):
    for service in ("customers", "inventory"):
        with psycopg.connect(postgres.superuser_dsn(stack_settings, service)) as conn:
            published = conn.execute(
                "select 1 from pg_publication_tables where pubname = 'mirador' "
                "and schemaname = 'mirador' and tablename = 'debezium_signal'"
            ).fetchone()
            rights = conn.execute(
                "select privilege, has_table_privilege(%s, %s, privilege) "
                "from unnest(array['INSERT', 'SELECT', 'UPDATE', 'DELETE', 'TRUNCATE']) as privilege",
                (stack_settings.cdc_user, SIGNAL),
            ).fetchall()
        assert published
        assert dict(rights) == {"INSERT": True, "SELECT": False, "UPDATE": False, "DELETE": False, "TRUNCATE": False}


@pytest.mark.stack
def test_the_registered_connectors_read_signals(stack_settings):
    for service in ("customers", "orders", "invoices", "inventory"):
        assert ops.progress(stack_settings, service).committed_lsn  # answers from the connector's offsets
        ops._require_signals(stack_settings, service)  # raises when the running config lacks the keys


@pytest.mark.stack
def test_resnapshot_during_updates_and_deletes_keeps_the_views_right(pipeline_env, stack_settings):
    env, _, home = pipeline_env
    dsn = postgres.service_dsn(stack_settings, "customers")
    tag = uuid.uuid4().hex[:8]
    ids = [str(uuid.uuid4()) for _ in range(203)]
    held_update, held_delete, untouched, churned = ids[0], ids[1], ids[2], ids[3:]
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into customers (id, email, name, country) values (%s, %s, 'before', 'GB')",
                [(i, f"resnapshot-{tag}-{n}@example.com") for n, i in enumerate(ids)],
            )
    # Written before the table is read, committed after: Debezium's reads carry the later position.
    first, second = psycopg.connect(dsn), psycopg.connect(dsn)
    first.execute("update customers set name = 'after', version = version + 1 where id = %s", (held_update,))
    second.execute("delete from customers where id = %s", (held_delete,))

    stop = threading.Event()
    failures: list[BaseException] = []

    def churn() -> None:
        rng = random.Random(7)
        alive = list(churned)
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while not stop.is_set() and len(alive) > 20:
                    key = rng.choice(alive)
                    if rng.random() < 0.25:
                        conn.execute("delete from customers where id = %s", (key,))
                        alive.remove(key)
                    else:
                        conn.execute(
                            "update customers set name = %s, version = version + 1 where id = %s",
                            (f"renamed {rng.randrange(10**6)}", key),
                        )
                    time.sleep(0.01)
        except BaseException as err:  # noqa: BLE001 - reported by the test below
            failures.append(err)

    traffic = subprocess.Popen(
        [MIRADOR, "simulate", "--rate", "20", "--duration", "10", "--seed", "11"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    churner = threading.Thread(target=churn)
    churner.start()
    try:
        request = ops.request(stack_settings, "customers.customers")
        ops.wait(stack_settings, request, timeout=120)
    finally:
        stop.set()
        churner.join()
        first.commit()
        second.commit()
        first.close()
        second.close()
        _, errors = traffic.communicate(timeout=120)
    assert not failures, failures
    assert traffic.returncode == 0, errors

    verify(env)  # loads, builds and publishes what was committed, then compares every view with Postgres

    warehouse = home / "warehouse"
    with duckdb.connect(str(warehouse / "mirador.duckdb"), read_only=True) as conn:
        changes = conn.execute(
            "select _op, _lsn, _seq from raw.customers__customers where id = ? order by _offset", [held_update]
        ).fetchall()
        # A row nobody changed: its read is its newest change, staged at its chunk's watermark.
        staged, read = conn.execute(
            "select s._lsn, (select max(json_extract_string(r._seq, '$[1]')::bigint) from raw.customers__customers r "
            "where r.id = s.customer_id and r._op = 'r') from staging.stg_customers__customers s where customer_id = ?",
            [untouched],
        ).fetchone()
    reads = [json.loads(seq) for op, lsn, seq in changes if op == "r" and lsn is None]
    update = next(lsn for op, lsn, _ in changes if op == "u")
    # The race happened: the read reached Kafka before the update, with a higher LSN than it.
    assert reads and int(reads[-1][1]) > update and changes[-1][0] == "u", changes
    assert read is not None and staged == read

    published = current_publication(warehouse / "published")
    with duckdb.connect(str(published.path(warehouse / "published")), read_only=True) as conn:
        names = dict(
            conn.execute(
                "select customer_id::varchar, customer_name from customer_summary where customer_id in (?, ?)",
                [held_update, held_delete],
            ).fetchall()
        )
    assert names == {held_update: "after"}
