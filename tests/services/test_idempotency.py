"""Idempotency-Key: a retried command returns the first result and writes nothing twice."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from .conftest import AUTH
from .helpers import accepted, refused, unique
from .test_orders import new_order

pytestmark = pytest.mark.anyio


def written(body: dict) -> tuple:
    """What a command wrote; a retry re-reads the LSN (a later, still safe bound), so it is left out."""
    return body["id"], body["version"], body["position"]["txid"]


async def test_a_retry_returns_the_first_result_and_writes_once(orders, query):
    data, key = new_order(), str(uuid.uuid4())
    first = await orders.post("/orders", json=data, headers={"Idempotency-Key": key})
    retry = await orders.post("/orders", json=data, headers={"Idempotency-Key": key})
    assert written(accepted(retry, 201)) == written(accepted(first, 201))
    assert retry.headers["idempotent-replayed"] == "true"
    assert query("orders", "select count(*) from orders where customer_id = %s", (data["customer_id"],)) == [(1,)]


async def test_a_key_reused_for_another_request_is_refused(orders, customers):
    key = str(uuid.uuid4())
    accepted(await orders.post("/orders", json=new_order(), headers={"Idempotency-Key": key}), 201)
    refused(
        await orders.post("/orders", json=new_order(), headers={"Idempotency-Key": key}), 422, "idempotency_key_reused"
    )
    refused(await orders.post("/orders", json={"bad": 1}, headers={"Idempotency-Key": "has space"}), 422)


async def test_a_retry_after_success_gets_the_first_answer_even_when_the_rule_would_now_refuse(orders, inventory):
    order = accepted(await orders.post("/orders", json=new_order()), 201)
    key = str(uuid.uuid4())
    paid = accepted(await orders.post(f"/orders/{order['id']}/pay", headers={"Idempotency-Key": key}))
    again = accepted(await orders.post(f"/orders/{order['id']}/pay", headers={"Idempotency-Key": key}))
    assert written(again) == written(paid)

    product = accepted(
        await inventory.post("/products", json={"sku": unique("SKU"), "name": "Jar", "list_price": "3"}), 201
    )["id"]
    accepted(await inventory.post(f"/products/{product}/stock/increase", json={"quantity": 2}))
    sold = accepted(
        await inventory.post(
            f"/products/{product}/stock/decrease", json={"quantity": 2}, headers={"Idempotency-Key": key + "-sell"}
        )
    )
    again = await inventory.post(
        f"/products/{product}/stock/decrease", json={"quantity": 2}, headers={"Idempotency-Key": key + "-sell"}
    )
    assert written(accepted(again)) == written(sold)  # not "insufficient stock": the first result stands


async def test_a_refused_command_stores_nothing_so_its_retry_can_succeed(inventory):
    product = accepted(
        await inventory.post("/products", json={"sku": unique("SKU"), "name": "Jar", "list_price": "3"}), 201
    )["id"]
    key = str(uuid.uuid4())
    decrease = {"json": {"quantity": 1}, "headers": {"Idempotency-Key": key}}
    refused(await inventory.post(f"/products/{product}/stock/decrease", **decrease), 409, "insufficient_stock")
    accepted(await inventory.post(f"/products/{product}/stock/increase", json={"quantity": 1}))
    accepted(await inventory.post(f"/products/{product}/stock/decrease", **decrease))


@pytest.mark.parametrize("service", ["orders", "inventory", "customers", "orders-pay"])
async def test_racing_retries_write_exactly_once(running_services, query, service):
    """30 copies of one command, one key, sent at once to two uvicorn workers: one write, one answer."""
    key = str(uuid.uuid4())
    async with httpx.AsyncClient(
        base_url=running_services[service.split("-")[0]],
        headers=AUTH | {"Idempotency-Key": key},
        limits=httpx.Limits(max_connections=30),
    ) as client:
        if service == "customers":  # the copies also race for the unique email: still gets the first answer, not 409s
            data = {"email": f"{unique('race')}@example.com", "name": "Race", "country": "NL"}
            responses = await asyncio.gather(*(client.post("/customers", json=data) for _ in range(30)))
            count = "select count(*) from customers where email = %s", (data["email"],)
        elif service == "orders-pay":  # a command that reads the order first, and checks its status
            order = (await client.post("/orders", json=new_order(), headers={"Idempotency-Key": key + "-o"})).json()
            responses = await asyncio.gather(*(client.post(f"/orders/{order['id']}/pay") for _ in range(30)))
            count = "select count(*) from orders where id = %s and status = 'paid' and version = 2", (order["id"],)
        elif service == "orders":
            data = new_order()
            responses = await asyncio.gather(*(client.post("/orders", json=data) for _ in range(30)))
            count = "select count(*) from orders where customer_id = %s", (data["customer_id"],)
        else:
            product = (
                await client.post(
                    "/products",
                    headers={"Idempotency-Key": key + "-p"},
                    json={"sku": unique("SKU"), "name": "Jar", "list_price": "3"},
                )
            ).json()["id"]
            responses = await asyncio.gather(
                *(client.post(f"/products/{product}/stock/increase", json={"quantity": 7}) for _ in range(30))
            )
            count = "select count(*) from stock_events where stream = %s", (product,)
    assert {r.status_code for r in responses} <= {200, 201}
    answers = {written(r.json()) for r in responses}
    assert len(answers) == 1, answers
    service = service.split("-")[0]
    assert query(service, *count) == [(1,)]
    assert query(service, "select count(*) from mirador.idempotency_keys where key = %s", (key,)) == [(1,)]
