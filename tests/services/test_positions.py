"""The source position in every answer: the transaction id of the write and a WAL position after it."""

from __future__ import annotations

import asyncio

import pytest

from .helpers import accepted
from .test_orders import new_order

pytestmark = pytest.mark.anyio


def lsn(text: str) -> int:
    high, low = text.split("/")
    return int(high, 16) << 32 | int(low, 16)


async def test_the_position_is_read_after_the_write_committed(orders, query):
    before = lsn(query("orders", "select pg_current_wal_lsn()::text")[0][0])
    answers = await asyncio.gather(*(orders.post("/orders", json=new_order()) for _ in range(20)))
    after = lsn(query("orders", "select pg_current_wal_lsn()::text")[0][0])
    for answer in answers:
        body = accepted(answer, 201)
        position = lsn(body["position"]["lsn"])
        assert before < position <= after
        # The row's own transaction: the txid Debezium reports as source.txId.
        assert query("orders", "select xmin::text::bigint from orders where id = %s", (body["id"],)) == [
            (body["position"]["txid"] % 2**32,)
        ]
