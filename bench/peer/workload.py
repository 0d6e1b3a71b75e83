"""The Postgres workload both systems capture: customers inserted at a steady rate, then a burst.

Every row is its own transaction at the steady rate; its commit time is when COMMIT returned here.
Every `sample`-th row also takes a WAL position after its commit (`pg_current_wal_lsn()`, as the
services answer a command), for a read-your-writes GET.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg

INSERT = "insert into customers (id, email, name, country) values (gen_random_uuid(), %s, 'Streamed', 'PT')"
INSERT_MANY = """
    insert into customers (id, email, name, country)
    select gen_random_uuid(), %(prefix)s || i || '@stream.example.com', 'Burst', 'PT'
    from generate_series(%(first)s::int, %(last)s::int) as i
"""
LSN = "select pg_current_wal_lsn()::text"


def email(prefix: str, number: int) -> str:
    return f"{prefix}{number}@stream.example.com"


async def stream(
    dsn: str,
    prefix: str,
    rate: float,
    duration: float,
    sample: int = 0,
    on_sample: Callable[[str, float, str], None] | None = None,
) -> dict[str, float]:
    """Insert `rate` rows a second for `duration` seconds; each row's email -> its commit time."""
    committed: dict[str, float] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        started = time.monotonic()
        number = 0
        while (due := started + number / rate) < started + duration:
            if (ahead := due - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            address = email(prefix, number)
            await conn.execute(INSERT, (address,))
            committed[address] = time.time()
            if sample and on_sample and number % sample == 0:
                lsn = (await (await conn.execute(LSN)).fetchone())[0]
                on_sample(address, committed[address], lsn)
            number += 1
    return committed


def burst(dsn: str, prefix: str, rows: int, per_transaction: int = 1000) -> dict:
    """Insert `rows` rows as fast as Postgres takes them, `per_transaction` a transaction."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        first = time.time()
        for start in range(0, rows, per_transaction):
            with conn.transaction():
                conn.execute(
                    INSERT_MANY, {"prefix": prefix, "first": start, "last": min(rows, start + per_transaction) - 1}
                )
        last = time.time()
        lsn = conn.execute(LSN).fetchone()[0]
    return {"rows": rows, "first_commit": first, "last_commit": last, "lsn": lsn, "last_email": email(prefix, rows - 1)}
