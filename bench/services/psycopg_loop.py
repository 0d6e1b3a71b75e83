"""The second straight-to-Postgres baseline: the statements of bench/services/pgbench/*.sql sent by a plain
psycopg loop, the driver the services use, so the gap to the services is what HTTP and FastAPI cost.

N async connections in one uvloop process, each sending its next transaction as soon as the last one
committed. Statements are prepared at once; the write and the read of the WAL position travel together.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable

import psycopg

from bench.services.loadgen import Result

PLACE_ORDER = """
with w0 as (
    insert into mirador.idempotency_keys (key, route, request_hash, status, response)
    values (%(key)s, 'POST /orders', '\\x00', 201, %(response)s::jsonb)
), w1 as (
    insert into orders (id, customer_id, currency, status, last_line_no)
    values (%(id)s, %(customer_id)s, 'EUR', 'placed', 3)
), w2 as (
    insert into order_lines (order_id, line_no, product_id, quantity, unit_price)
    select %(id)s, line_no, product_id, quantity, unit_price
    from rows from (jsonb_to_recordset(%(lines)s::jsonb) as (product_id uuid, quantity int, unit_price numeric))
         with ordinality as line (product_id, quantity, unit_price, line_no)
)
select pg_current_xact_id()::text::bigint
"""
STOCK = """
select coalesce(max(version), 0) + 1,
       coalesce(sum(case event_type when 'StockIncreased' then quantity else -quantity end), 0)
from stock_events where stream = md5(%s)::uuid
"""
DECREASE = """
with w0 as (
    insert into mirador.idempotency_keys (key, route, request_hash, status, response)
    values (%(key)s, 'POST /products/stock/decrease', '\\x00', 200, %(response)s::jsonb)
), w1 as (
    insert into stock_events (stream, version, event_type, quantity, reason, command_id, schema_version)
    values (md5(%(stream)s)::uuid, %(version)s, 'StockDecreased', 1, 'bench', %(key)s, 1)
    on conflict do nothing
)
select pg_current_xact_id()::text::bigint
"""
LSN = "select pg_current_wal_lsn()::text"

Transaction = Callable[[psycopg.AsyncConnection], Awaitable[None]]


async def _write_and_position(conn: psycopg.AsyncConnection, statement: str, params: dict) -> None:
    async with conn.pipeline():
        txid = await conn.execute(statement, params)
        lsn = await conn.execute(LSN)
    await txid.fetchone()
    await lsn.fetchone()


def place_order(lines: str, response: str) -> Transaction:
    async def tx(conn: psycopg.AsyncConnection) -> None:
        await _write_and_position(
            conn,
            PLACE_ORDER,
            {
                "key": f"psycopg-{uuid.uuid4().hex}",
                "response": response,
                "id": uuid.uuid4(),
                "customer_id": uuid.uuid4(),
                "lines": lines,
            },
        )

    return tx


def decrease_stock(run: str, products: int, response: str) -> Transaction:
    async def tx(conn: psycopg.AsyncConnection) -> None:
        stream = f"{run}{random.randint(1, products)}"
        version, on_hand = await (await conn.execute(STOCK, (stream,))).fetchone()
        if on_hand >= 1:
            await _write_and_position(
                conn,
                DECREASE,
                {"key": f"psycopg-{uuid.uuid4().hex}", "response": response, "stream": stream, "version": version},
            )

    return tx


async def run(dsn: str, transaction: Transaction, *, concurrency: int, seconds: float, warmup: float = 1.0) -> Result:
    """Drive `transaction` on `concurrency` connections for `warmup + seconds`; measure the last `seconds`."""
    conns = [
        await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=0) for _ in range(concurrency)
    ]
    result = Result()
    start = time.perf_counter() + warmup
    stop = start + seconds

    async def client(conn: psycopg.AsyncConnection) -> None:
        while (t0 := time.perf_counter()) < stop:
            try:
                await transaction(conn)
                status = 200
            except psycopg.Error:
                status = 500
            result.record(t0, time.perf_counter(), status, start)

    try:
        await asyncio.gather(*(client(conn) for conn in conns))
    finally:
        for conn in conns:
            await conn.close()
    result.seconds = seconds
    return result
