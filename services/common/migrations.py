"""Versioned SQL migrations, applied at start-up, recorded in `mirador.schema_migrations`, idempotent.

Files are `NNNN_name.sql` in a package's `migrations/` folder, applied in order, each once. All pending
files apply in one transaction under an advisory lock, so workers starting together apply them once
and a failing file leaves nothing behind. An applied file that has since changed stops the start-up.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from psycopg import AsyncConnection

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

LOCK_KEY = 0x6D69_7261_646F_72  # "mirador": one lock per database for all migration runs

CREATE_LEDGER = """
create schema if not exists mirador;
create table if not exists mirador.schema_migrations (
    component  text        not null,
    version    int         not null,
    name       text        not null,
    checksum   text        not null,
    applied_at timestamptz not null default now(),
    primary key (component, version)
)
"""
LOCK = "select pg_advisory_xact_lock(%s)"
APPLIED = "select version, name, checksum from mirador.schema_migrations where component = %s"
RECORD = "insert into mirador.schema_migrations (component, version, name, checksum) values (%s, %s, %s, %s)"


class MigrationError(RuntimeError):
    """A migration failed or an applied one was edited; the service must not start."""


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(component: str, package: str) -> list[Migration]:
    """The migrations shipped in `<package>/migrations`, in version order."""
    folder: Traversable = files(package) / "migrations"
    found = []
    for entry in folder.iterdir():
        if match := FILE_NAME.match(entry.name):
            found.append(Migration(component, int(match[1]), match[2], entry.read_text()))
        elif entry.name.endswith(".sql"):
            raise MigrationError(f"{package}/migrations/{entry.name} is not named NNNN_name.sql")
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{package}/migrations has two files with the same version number")
    return found


async def apply(conn: AsyncConnection, migrations: list[Migration]) -> list[Migration]:
    """Apply the pending migrations; return those applied now (none when all were applied before)."""
    applied_now = []
    async with conn.transaction():
        await conn.execute(LOCK, (LOCK_KEY,))
        await conn.execute(CREATE_LEDGER)
        ledgers: dict[str, dict[int, tuple[str, str]]] = {}
        for migration in migrations:
            if migration.component not in ledgers:
                rows = await (await conn.execute(APPLIED, (migration.component,))).fetchall()
                ledgers[migration.component] = {version: (name, checksum) for version, name, checksum in rows}
            recorded = ledgers[migration.component].get(migration.version)
            label = f"{migration.component} {migration.version:04d}_{migration.name}.sql"
            if recorded:
                if recorded[1] != migration.checksum:
                    raise MigrationError(f"{label} changed after it was applied; add a new migration instead")
                continue
            try:
                await conn.execute(migration.sql)
            except Exception as err:
                raise MigrationError(f"{label} failed: {err}") from err
            await conn.execute(RECORD, (migration.component, migration.version, migration.name, migration.checksum))
            applied_now.append(migration)
    return applied_now
