"""Migrations: applied in order, recorded, idempotent, and an edited one stops the start."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from services.common import migrations
from services.common.migrations import Migration, MigrationError

pytestmark = pytest.mark.anyio


@pytest.fixture
async def conn(dsns):
    async with await psycopg.AsyncConnection.connect(dsns["customers"], autocommit=True) as conn:
        yield conn


@pytest.fixture
async def component(conn):
    name = f"test_{uuid.uuid4().hex[:8]}"
    yield name
    await conn.execute(f"drop table if exists mirador.{name}")
    await conn.execute("delete from mirador.schema_migrations where component = %s", (name,))


async def test_pending_migrations_apply_once_in_order(conn, component):
    steps = [
        Migration(component, 1, "create", f"create table mirador.{component} (n int)"),
        Migration(
            component,
            2,
            "fill",
            f"insert into mirador.{component} values (1); insert into mirador.{component} values (2)",
        ),
    ]
    assert [m.version for m in await migrations.apply(conn, steps)] == [1, 2]
    assert await migrations.apply(conn, steps) == []  # idempotent: nothing runs twice
    rows = await (await conn.execute(f"select count(*) from mirador.{component}")).fetchone()
    assert rows == (2,)
    ledger = await (
        await conn.execute(
            "select version, name from mirador.schema_migrations where component = %s order by version", (component,)
        )
    ).fetchall()
    assert ledger == [(1, "create"), (2, "fill")]


async def test_a_failing_migration_leaves_nothing_behind(conn, component):
    steps = [
        Migration(component, 1, "create", f"create table mirador.{component} (n int)"),
        Migration(component, 2, "broken", "select no_such_column from nowhere"),
    ]
    with pytest.raises(MigrationError, match="0002_broken.sql failed"):
        await migrations.apply(conn, steps)
    assert await (await conn.execute("select to_regclass(%s)", (f"mirador.{component}",))).fetchone() == (None,)


async def test_an_edited_migration_stops_the_start(conn, component):
    await migrations.apply(conn, [Migration(component, 1, "create", f"create table mirador.{component} (n int)")])
    edited = Migration(component, 1, "create", f"create table mirador.{component} (n bigint)")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrations.apply(conn, [edited])


def test_every_service_ships_numbered_migrations():
    for package in (
        "services.common",
        "services.customers",
        "services.orders",
        "services.invoices",
        "services.inventory",
    ):
        found = migrations.discover("x", package)
        assert [m.version for m in found] == list(range(1, len(found) + 1)) and found


async def test_the_services_record_their_migrations(customers, query):
    for service, component in [("customers", "customers"), ("customers", "common")]:
        assert (
            query(service, "select count(*) from mirador.schema_migrations where component = %s", (component,))[0][0]
            >= 1
        )
