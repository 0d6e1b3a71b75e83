"""Orders: placed with lines, lines changed while placed, placed -> paid -> shipped or cancelled."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
import pytest

from .conftest import AUTH
from .helpers import accepted, invalid_fields, refused

pytestmark = pytest.mark.anyio


def new_order(lines: int = 3) -> dict:
    return {
        "customer_id": str(uuid.uuid4()),
        "currency": "EUR",
        "lines": [
            {"product_id": str(uuid.uuid4()), "quantity": i + 1, "unit_price": f"{i + 1}9.99"} for i in range(lines)
        ],
    }


async def place(orders, lines: int = 3) -> dict:
    return accepted(await orders.post("/orders", json=new_order(lines)), 201)


async def test_place_order_writes_the_order_and_its_numbered_lines(orders, query):
    data = new_order(3)
    body = accepted(await orders.post("/orders", json=data), 201)
    assert query("orders", "select customer_id::text, status, version from orders where id = %s", (body["id"],)) == [
        (data["customer_id"], "placed", 1)
    ]
    lines = query(
        "orders",
        "select line_no, product_id::text, quantity, unit_price from order_lines where order_id = %s order by line_no",
        (body["id"],),
    )
    assert lines == [
        (i + 1, line["product_id"], line["quantity"], Decimal(line["unit_price"]))
        for i, line in enumerate(data["lines"])
    ]


async def test_place_order_refuses_bad_lines_and_writes_nothing(orders, query):
    data = new_order(2)
    data["lines"][1] |= {"quantity": 0, "unit_price": "1.999"}
    assert invalid_fields(await orders.post("/orders", json=data)) == {
        "body.lines.1.quantity",
        "body.lines.1.unit_price",
    }
    assert invalid_fields(await orders.post("/orders", json={**data, "lines": []})) == {"body.lines"}
    assert query("orders", "select 1 from orders where customer_id = %s", (data["customer_id"],)) == []


async def test_a_failure_in_the_last_statement_leaves_nothing_behind(orders, query):
    """One transaction: when Postgres rejects the lines, the order row and the idempotency key go too."""
    data = new_order(2)
    poisoned = data["lines"][1]["product_id"]
    query(
        "orders",
        f"""
        create function reject_for_test_{poisoned[:8]}() returns trigger language plpgsql as $$
        begin raise exception 'rejected for the test'; end $$;
        create trigger reject_{poisoned[:8]} before insert on order_lines for each row
            when (new.product_id = '{poisoned}') execute function reject_for_test_{poisoned[:8]}();
    """,
    )
    key = str(uuid.uuid4())
    try:
        response = await orders.post("/orders", json=data, headers={"Idempotency-Key": key})
    finally:
        query(
            "orders",
            f"drop trigger reject_{poisoned[:8]} on order_lines; drop function reject_for_test_{poisoned[:8]}()",
        )
    refused(response, 500)
    assert query("orders", "select 1 from orders where customer_id = %s", (data["customer_id"],)) == []
    assert query("orders", "select 1 from mirador.idempotency_keys where key = %s", (key,)) == []
    accepted(await orders.post("/orders", json=data, headers={"Idempotency-Key": key}), 201)


async def test_add_and_remove_lines_while_placed(orders, query):
    order = await place(orders, 2)
    added = accepted(
        await orders.post(
            f"/orders/{order['id']}/lines",
            headers={"If-Match": '"1"'},
            json={"product_id": str(uuid.uuid4()), "quantity": 5, "unit_price": "2.50"},
        ),
        201,
    )
    assert (added["version"], added["line_no"]) == (2, 3)
    removed = accepted(await orders.delete(f"/orders/{order['id']}/lines/1", headers={"If-Match": '"2"'}))
    assert removed["version"] == 3
    assert query("orders", "select line_no from order_lines where order_id = %s order by 1", (order["id"],)) == [
        (2,),
        (3,),
    ]
    again = accepted(
        await orders.post(
            f"/orders/{order['id']}/lines", json={"product_id": str(uuid.uuid4()), "quantity": 1, "unit_price": "1"}
        ),
        201,
    )
    assert again["line_no"] == 4  # numbers are never reused


async def test_line_errors(orders):
    order = await place(orders, 1)
    refused(await orders.delete(f"/orders/{order['id']}/lines/1"), 409, "last_line")
    refused(await orders.delete(f"/orders/{order['id']}/lines/9"), 404, "line_not_found")
    refused(await orders.delete(f"/orders/{order['id']}/lines/0"), 422)
    refused(
        await orders.post(
            f"/orders/{uuid.uuid4()}/lines", json={"product_id": str(uuid.uuid4()), "quantity": 1, "unit_price": "1"}
        ),
        404,
        "order_not_found",
    )
    refused(await orders.delete(f"/orders/{order['id']}/lines/1", headers={"If-Match": '"2"'}), 412)


async def test_an_order_moves_placed_paid_shipped(orders, query):
    order = await place(orders)
    assert accepted(await orders.post(f"/orders/{order['id']}/pay", headers={"If-Match": '"1"'}))["version"] == 2
    assert accepted(await orders.post(f"/orders/{order['id']}/ship"))["version"] == 3
    row = query(
        "orders", "select status, paid_at is not null, shipped_at is not null from orders where id = %s", (order["id"],)
    )
    assert row == [("shipped", True, True)]


@pytest.mark.parametrize(
    ("moves", "refused_move"),
    [
        (["ship"], "ship"),  # placed cannot ship
        (["pay", "pay"], "pay"),  # paid cannot pay again
        (["pay", "ship", "cancel"], "cancel"),  # shipped is final
        (["cancel", "pay"], "pay"),  # cancelled is final
    ],
)
async def test_invalid_transitions_are_refused_with_the_current_status(orders, moves, refused_move):
    order = await place(orders)
    for move in moves[:-1]:
        accepted(await orders.post(f"/orders/{order['id']}/{move}"))
    problem = refused(await orders.post(f"/orders/{order['id']}/{refused_move}"), 409, "invalid_transition")
    assert problem["current_status"] in problem["detail"]


async def test_cancel_records_the_reason_and_freezes_the_lines(orders, query):
    order = await place(orders, 2)
    accepted(await orders.post(f"/orders/{order['id']}/pay"))
    refused(await orders.delete(f"/orders/{order['id']}/lines/1"), 409, "order_not_open")
    accepted(await orders.post(f"/orders/{order['id']}/cancel", json={"reason": "out of stock"}))
    assert query("orders", "select status, cancel_reason from orders where id = %s", (order["id"],)) == [
        ("cancelled", "out of stock")
    ]


async def test_stale_version_on_a_transition_is_412(orders):
    order = await place(orders)
    refused(await orders.post(f"/orders/{order['id']}/pay", headers={"If-Match": 'W/"5"'}), 412, "stale_version")
    refused(await orders.post(f"/orders/{uuid.uuid4()}/pay"), 404, "order_not_found")


async def test_add_line_errors(orders):
    order = await place(orders, 1)
    line = {"product_id": str(uuid.uuid4()), "quantity": 1, "unit_price": "1.00"}
    assert invalid_fields(await orders.post(f"/orders/{order['id']}/lines", json={**line, "quantity": -1})) == {
        "body.quantity"
    }
    refused(await orders.post(f"/orders/{order['id']}/lines", json=line, headers={"If-Match": '"9"'}), 412)
    accepted(await orders.post(f"/orders/{order['id']}/cancel"))
    refused(await orders.post(f"/orders/{order['id']}/lines", json=line), 409, "order_not_open")


async def _at_once(base_url: str, requests: list[tuple[str, str, dict | None]]) -> list[httpx.Response]:
    """The requests sent together over their own connections, to the service's two uvicorn workers."""
    async with httpx.AsyncClient(
        base_url=base_url, headers=AUTH, limits=httpx.Limits(max_connections=len(requests))
    ) as client:
        return await asyncio.gather(*(client.request(method, path, json=body) for method, path, body in requests))


async def test_concurrent_moves_of_one_order_let_exactly_one_through(running_services, query):
    """Each move reads the order unlocked; its guarded write finds whether another got there first."""
    order = accepted((await _at_once(running_services["orders"], [("POST", "/orders", new_order())]))[0], 201)
    responses = await _at_once(running_services["orders"], [("POST", f"/orders/{order['id']}/pay", None)] * 16)
    assert sorted(r.status_code for r in responses) == [200] + [409] * 15
    assert all(refused(r, 409, "invalid_transition") for r in responses if r.status_code != 200)
    assert query("orders", "select status, version from orders where id = %s", (order["id"],)) == [("paid", 2)]


async def test_concurrent_line_additions_all_land_one_after_another(running_services, query):
    """Twelve lines added at once, none with If-Match: each command runs again until it wins its turn."""
    order = accepted((await _at_once(running_services["orders"], [("POST", "/orders", new_order(1))]))[0], 201)
    line = {"product_id": str(uuid.uuid4()), "quantity": 1, "unit_price": "1.00"}
    responses = await _at_once(running_services["orders"], [("POST", f"/orders/{order['id']}/lines", line)] * 12)
    answers = [accepted(r, 201) for r in responses]
    assert sorted(a["line_no"] for a in answers) == list(range(2, 14))
    assert sorted(a["version"] for a in answers) == list(range(2, 14))
    assert query(
        "orders",
        "select version, last_line_no, (select count(*) from order_lines where order_id = o.id) "
        "from orders o where id = %s",
        (order["id"],),
    ) == [(13, 13, 13)]
