"""The connection pool of one service worker, opened with an error that says what to fix."""

from __future__ import annotations

import logging

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from services.common.config import ServiceSettings


class _RedundantPipelineWarning(logging.Filter):
    """psycopg warns when a pipeline ends after an error it already raised; the error itself is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_RedundantPipelineWarning())


class DatabaseUnreachable(RuntimeError):
    """The service cannot start: its database refused or did not answer."""


def describe(settings: ServiceSettings) -> str:
    params = conninfo_to_dict(settings.database_dsn)
    return (
        f"database {params.get('dbname', '?')!r} as {params.get('user', '?')!r} "
        f"at {params.get('host', 'localhost')}:{params.get('port', 5432)}"
    )


def unreachable(settings: ServiceSettings, err: Exception) -> DatabaseUnreachable:
    reason = str(err).strip().splitlines()[0].removeprefix("connection failed: ")  # psycopg adds a hint line
    return DatabaseUnreachable(
        f"the {settings.service} service cannot reach its {describe(settings)}: {reason}; "
        f"fix: start Postgres (`mirador stack up`), or set MIRADOR_{settings.service.upper()}_DSN "
        "(or MIRADOR_PG_HOST / MIRADOR_PG_PORT / MIRADOR_PG_SERVICE_PASSWORD)"
    )


def probe(settings: ServiceSettings) -> None:
    """Connect once, so a start-up fails with the reason rather than a pool timeout."""
    try:
        psycopg.connect(settings.database_dsn, connect_timeout=round(settings.connect_timeout)).close()
    except psycopg.OperationalError as err:
        raise unreachable(settings, err) from None


async def open_pool(settings: ServiceSettings) -> AsyncConnectionPool:
    """Connections in autocommit: each command opens its own transaction, so none is left idle in one."""
    try:
        conn = await psycopg.AsyncConnection.connect(settings.database_dsn, connect_timeout=settings.connect_timeout)
        await conn.close()
    except psycopg.OperationalError as err:
        raise unreachable(settings, err) from None
    pool = AsyncConnectionPool(
        settings.database_dsn,
        min_size=settings.pool_min_size,
        max_size=max(settings.pool_min_size, settings.pool_max_size),
        kwargs={"autocommit": True},
        name=f"mirador-{settings.service}",
        timeout=settings.pool_timeout,
        open=False,
    )
    await pool.open(wait=True, timeout=settings.connect_timeout)
    return pool
