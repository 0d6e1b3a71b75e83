"""Rows changed in each service database arrive as Debezium events on that service's topics."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from psycopg import sql

from cdc import postgres
from cdc.config import SERVICES

from .kafka_reader import TopicReader

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("service", SERVICES)
def test_insert_update_delete_arrive_on_the_service_topic(stack_settings, service):
    table = f"cdc_probe_{uuid.uuid4().hex[:8]}"
    topic = f"{service}.public.{table}"
    reader = TopicReader(stack_settings.kafka_bootstrap_servers, topic)
    with psycopg.connect(postgres.service_dsn(stack_settings, service), autocommit=True) as conn:
        ident = sql.Identifier(table)
        conn.execute(sql.SQL("create table {} (id int primary key, label text, amount numeric(10, 2))").format(ident))
        try:
            committed_at = time.time()
            conn.execute(sql.SQL("insert into {} values (1, 'first', 12.34)").format(ident))
            conn.execute(sql.SQL("update {} set label = 'second' where id = 1").format(ident))
            conn.execute(sql.SQL("delete from {} where id = 1").format(ident))
            wal_after = conn.execute("select pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
            messages = reader.read(4, timeout=60)
        finally:
            conn.execute(sql.SQL("drop table {}").format(ident))
            reader.close()

    assert [m["value"] and m["value"]["payload"]["op"] for m in messages] == ["c", "u", "d", None]
    create, update, delete, tombstone = (m["value"] and m["value"]["payload"] for m in messages)
    assert create["before"] is None
    assert create["after"]["label"] == "first"
    assert update["after"]["label"] == "second"
    assert delete["before"]["id"] == 1 and delete["after"] is None
    assert messages[3]["key"]["payload"] == {"id": 1}  # the tombstone keeps the key

    # Exact decimals: the value as text (decimal.handling.mode=string), precision and scale propagated.
    field = next(f for f in messages[0]["value"]["schema"]["fields"][1]["fields"] if f["field"] == "amount")
    assert field["type"] == "string" and create["after"]["amount"] == "12.34"
    assert field["parameters"]["__debezium.source.column.type"] == "NUMERIC"
    assert field["parameters"]["__debezium.source.column.scale"] == "2"

    lsns = [p["source"]["lsn"] for p in (create, update, delete)]
    assert lsns == sorted(lsns) and 0 < lsns[-1] <= wal_after
    for payload in (create, update, delete):
        assert payload["source"]["db"] == service and payload["source"]["table"] == table
        assert abs(payload["source"]["ts_ms"] / 1000 - committed_at) < 30  # source commit time
        assert payload["transaction"]["id"]
    # "Within seconds": the last event reached us soon after the commit.
    assert messages[2]["received_at"] - committed_at < 30


def test_publication_covers_new_service_tables_but_not_bookkeeping(stack_settings):
    with psycopg.connect(postgres.service_dsn(stack_settings, "orders"), autocommit=True) as conn:
        conn.execute("create table public.cdc_probe_new (id int primary key)")
        conn.execute("create table mirador.cdc_probe_bookkeeping (id int primary key)")
        try:
            published = {
                f"{s}.{t}"
                for s, t in conn.execute(
                    "select schemaname, tablename from pg_publication_tables where pubname = 'mirador'"
                )
            }
        finally:
            conn.execute("drop table public.cdc_probe_new, mirador.cdc_probe_bookkeeping")
    assert "public.cdc_probe_new" in published
    assert "mirador.heartbeat" in published
    assert "mirador.cdc_probe_bookkeeping" not in published


def test_debezium_role_has_least_privilege(stack_settings):
    with psycopg.connect(postgres.superuser_dsn(stack_settings, "orders")) as conn:
        role = conn.execute(
            "select rolsuper, rolreplication, rolcreatedb, rolcreaterole from pg_roles where rolname = %s",
            (stack_settings.cdc_user,),
        ).fetchone()
        can_write_heartbeat = conn.execute(
            "select has_table_privilege(%s, 'mirador.heartbeat', 'UPDATE')", (stack_settings.cdc_user,)
        ).fetchone()[0]
        conn.execute("create table public.cdc_probe_priv (id int)")
        try:
            # Default privileges, granted by the service owner: read new tables, never write them.
            conn.execute("set role orders")
            conn.execute("create table public.cdc_probe_priv2 (id int)")
            conn.execute("reset role")
            select, insert = conn.execute(
                "select has_table_privilege(%s, 'public.cdc_probe_priv2', 'SELECT'), "
                "has_table_privilege(%s, 'public.cdc_probe_priv2', 'INSERT')",
                (stack_settings.cdc_user, stack_settings.cdc_user),
            ).fetchone()
        finally:
            conn.rollback()
    assert role == (False, True, False, False)
    assert can_write_heartbeat
    assert (select, insert) == (True, False)
