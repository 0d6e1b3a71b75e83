"""Inventory: the product catalogue as plain rows, stock as an append-only stream of events."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from cdc import postgres

from .helpers import accepted, invalid_fields, refused, unique

pytestmark = pytest.mark.anyio


async def new_product(inventory, stock: int = 0) -> str:
    product = accepted(
        await inventory.post("/products", json={"sku": unique("SKU"), "name": "Mug", "list_price": "7.50"}), 201
    )
    if stock:
        accepted(await inventory.post(f"/products/{product['id']}/stock/increase", json={"quantity": stock}))
    return product["id"]


def folded(query, product_id: str) -> int:
    """Stock as a reader would compute it: the events alone, no snapshot."""
    return query(
        "inventory",
        "select coalesce(sum(case event_type when 'StockIncreased' then quantity "
        "else -quantity end), 0) from stock_events where stream = %s",
        (product_id,),
    )[0][0]


async def test_register_rename_reprice_retire(inventory, query):
    product_id = await new_product(inventory)
    accepted(await inventory.patch(f"/products/{product_id}", json={"name": "Big mug"}, headers={"If-Match": '"1"'}))
    accepted(await inventory.patch(f"/products/{product_id}", json={"list_price": "8.25"}))
    assert accepted(await inventory.post(f"/products/{product_id}/retire"))["version"] == 4
    assert query(
        "inventory", "select name, list_price::text, retired_at is not null from products where id = %s", (product_id,)
    ) == [("Big mug", "8.25", True)]
    refused(await inventory.patch(f"/products/{product_id}", json={"name": "x"}), 409, "product_retired")
    refused(await inventory.post(f"/products/{product_id}/retire"), 409, "product_retired")


async def test_product_errors(inventory):
    sku = unique("SKU")
    accepted(await inventory.post("/products", json={"sku": sku, "name": "A", "list_price": "1"}), 201)
    refused(await inventory.post("/products", json={"sku": sku, "name": "B", "list_price": "1"}), 409, "sku_taken")
    assert invalid_fields(
        await inventory.post("/products", json={"sku": "no spaces", "name": "B", "list_price": -1})
    ) == {"body.sku", "body.list_price"}
    refused(await inventory.patch(f"/products/{uuid.uuid4()}", json={"name": "x"}), 404, "product_not_found")


async def test_stock_changes_append_events_with_the_command_id(inventory, query):
    product_id = await new_product(inventory)
    key = str(uuid.uuid4())
    body = accepted(
        await inventory.post(
            f"/products/{product_id}/stock/increase",
            headers={"Idempotency-Key": key},
            json={"quantity": 10, "reason": "delivery"},
        )
    )
    assert (body["version"], body["event"]) == (1, "StockIncreased")
    accepted(await inventory.post(f"/products/{product_id}/stock/decrease", json={"quantity": 4}))
    events = query(
        "inventory",
        "select version, event_type, quantity, reason, command_id, schema_version "
        "from stock_events where stream = %s order by version",
        (product_id,),
    )
    assert events[0] == (1, "StockIncreased", 10, "delivery", key, 1)
    assert events[1][:3] == (2, "StockDecreased", 4)
    assert folded(query, product_id) == 6
    columns = {
        c
        for (c,) in query(
            "inventory", "select column_name from information_schema.columns where table_schema = 'public'"
        )
    }
    assert not {c for c in columns if "stock" in c or "on_hand" in c}  # no current-stock column anywhere


async def test_a_decrease_below_zero_is_refused(inventory, query):
    product_id = await new_product(inventory, stock=3)
    problem = refused(
        await inventory.post(f"/products/{product_id}/stock/decrease", json={"quantity": 4}), 409, "insufficient_stock"
    )
    assert problem["on_hand"] == 3
    assert folded(query, product_id) == 3


async def test_retired_products_take_no_new_stock_but_sell_what_is_left(inventory):
    product_id = await new_product(inventory, stock=2)
    accepted(await inventory.post(f"/products/{product_id}/retire"))
    refused(
        await inventory.post(f"/products/{product_id}/stock/increase", json={"quantity": 1}), 409, "product_retired"
    )
    accepted(await inventory.post(f"/products/{product_id}/stock/decrease", json={"quantity": 2}))
    refused(await inventory.post(f"/products/{uuid.uuid4()}/stock/decrease", json={"quantity": 1}), 404)


async def test_snapshots_shorten_the_fold_but_the_events_decide(inventory, query):
    product_id = await new_product(inventory)  # this app snapshots every 5 events
    for quantity in range(1, 13):
        accepted(await inventory.post(f"/products/{product_id}/stock/increase", json={"quantity": quantity}))
    assert query(
        "inventory", "select version, on_hand from mirador.stock_snapshots where stream = %s", (product_id,)
    ) == [(10, sum(range(1, 11)))]
    refused(await inventory.post(f"/products/{product_id}/stock/decrease", json={"quantity": 79}), 409)
    accepted(await inventory.post(f"/products/{product_id}/stock/decrease", json={"quantity": 78}))
    assert folded(query, product_id) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "update stock_events set quantity = quantity + 1",
        "delete from stock_events",
        "truncate stock_events",
    ],
)
@pytest.mark.parametrize("role", ["owner", "superuser"])
async def test_the_database_refuses_to_change_or_remove_events(inventory, query, stack_settings, statement, role):
    product_id = await new_product(inventory, stock=5)
    dsn = (
        postgres.service_dsn(stack_settings, "inventory")
        if role == "owner"
        else postgres.superuser_dsn(stack_settings, "inventory")
    )
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        conn.execute(
            f"{statement}{' where stream = %s' if 'truncate' not in statement else ''}",
            () if "truncate" in statement else (product_id,),
        )
    expected = "permission denied" if role == "owner" else "append-only"
    assert expected in str(err.value)
    assert folded(query, product_id) == 5


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "", {"name": "x"}),
        ("POST", "/retire", None),
        ("POST", "/stock/increase", {"quantity": 1}),
        ("POST", "/stock/decrease", {"quantity": 1}),
    ],
)
async def test_every_product_command_answers_404_for_an_unknown_product(inventory, method, path, body):
    refused(await inventory.request(method, f"/products/{uuid.uuid4()}{path}", json=body), 404, "product_not_found")


async def test_stale_versions_and_invalid_quantities(inventory):
    product_id = await new_product(inventory)
    refused(await inventory.patch(f"/products/{product_id}", json={"name": "x"}, headers={"If-Match": '"2"'}), 412)
    refused(await inventory.post(f"/products/{product_id}/retire", headers={"If-Match": '"2"'}), 412)
    for quantity in (0, -3, 1_000_001, "many"):
        assert invalid_fields(
            await inventory.post(f"/products/{product_id}/stock/increase", json={"quantity": quantity})
        ) == {"body.quantity"}
