"""200 concurrent decreases of one product's stock, through two uvicorn workers."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from .conftest import AUTH
from .helpers import unique

pytestmark = pytest.mark.anyio

STOCK = 150
DECREASES = 200


async def test_concurrent_decreases_never_take_stock_below_zero(running_services, query):
    async with httpx.AsyncClient(
        base_url=running_services["inventory"], headers=AUTH, timeout=60, limits=httpx.Limits(max_connections=DECREASES)
    ) as client:
        product = (
            await client.post("/products", json={"sku": unique("SKU"), "name": "Hot item", "list_price": "9.99"})
        ).json()["id"]
        for quantity in (100, 50):
            assert (
                await client.post(f"/products/{product}/stock/increase", json={"quantity": quantity})
            ).status_code == 200
        responses = await asyncio.gather(
            *(
                client.post(f"/products/{product}/stock/decrease", json={"quantity": 1, "reason": "sold"})
                for _ in range(DECREASES)
            )
        )

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 409}, statuses  # every request ends in success or 409
    accepted = statuses[200]
    assert accepted <= STOCK
    refusals = Counter(r.json()["type"].rsplit(":", 1)[1] for r in responses if r.status_code == 409)
    assert accepted + refusals["insufficient_stock"] >= DECREASES * 0.9, refusals  # few gave up on retries

    events = query(
        "inventory",
        "select version, event_type, quantity from stock_events where stream = %s order by version",
        (product,),
    )
    assert [v for v, _, _ in events] == list(range(1, len(events) + 1))  # one event per version, no gaps
    on_hand, lowest = 0, 0
    for _, kind, quantity in events:
        on_hand += quantity if kind == "StockIncreased" else -quantity
        lowest = min(lowest, on_hand)
    assert lowest == 0  # never below zero at any point of the stream
    assert on_hand == STOCK - accepted  # increases minus accepted decreases
    assert sum(1 for _, kind, _ in events if kind == "StockDecreased") == accepted
