"""Customers: register, update (partial), delete; with versions, auth and problem+json errors."""

from __future__ import annotations

import uuid

import pytest

from .helpers import accepted, invalid_fields, refused, unique

pytestmark = pytest.mark.anyio


def new_customer(**fields) -> dict:
    return {"email": f"{unique('ann')}@example.com", "name": "Ann Smith", "country": "NL", **fields}


async def test_register_writes_the_row_at_version_1(customers, query):
    data = new_customer()
    body = accepted(await customers.post("/customers", json=data), 201)
    assert body["version"] == 1
    rows = query("customers", "select email, name, country, version from customers where id = %s", (body["id"],))
    assert rows == [(data["email"], "Ann Smith", "NL", 1)]


async def test_register_refuses_an_email_taken_in_any_case(customers):
    data = new_customer()
    accepted(await customers.post("/customers", json=data), 201)
    again = await customers.post("/customers", json=new_customer(email=data["email"].upper()))
    refused(again, 409, "email_taken")


async def test_register_names_every_invalid_field(customers):
    response = await customers.post(
        "/customers", json={"email": "not-an-email", "name": "", "country": "nl", "extra": 1}
    )
    assert invalid_fields(response) == {"body.email", "body.name", "body.country", "body.extra"}


async def test_update_changes_only_the_fields_sent(customers, query):
    created = accepted(await customers.post("/customers", json=new_customer()), 201)
    body = accepted(
        await customers.patch(f"/customers/{created['id']}", json={"country": "DE"}, headers={"If-Match": '"1"'})
    )
    assert body["version"] == 2
    assert query("customers", "select name, country, version from customers where id = %s", (created["id"],)) == [
        ("Ann Smith", "DE", 2)
    ]


async def test_update_with_a_stale_version_is_refused_and_changes_nothing(customers, query):
    created = accepted(await customers.post("/customers", json=new_customer()), 201)
    accepted(await customers.patch(f"/customers/{created['id']}", json={"name": "Ann B"}))
    problem = refused(
        await customers.patch(f"/customers/{created['id']}", json={"name": "Ann C"}, headers={"If-Match": '"1"'}),
        412,
        "stale_version",
    )
    assert problem["current_version"] == 2
    assert query("customers", "select name from customers where id = %s", (created["id"],)) == [("Ann B",)]


async def test_update_needs_a_change_and_refuses_nulls(customers):
    created = accepted(await customers.post("/customers", json=new_customer()), 201)
    assert invalid_fields(await customers.patch(f"/customers/{created['id']}", json={})) == {"body"}
    assert invalid_fields(await customers.patch(f"/customers/{created['id']}", json={"name": None})) == {"body"}
    assert invalid_fields(
        await customers.patch(f"/customers/{created['id']}", json={"name": "x"}, headers={"If-Match": "soon"})
    ) == {"header.if-match"}


async def test_update_to_a_taken_email_is_refused(customers):
    first = new_customer()
    accepted(await customers.post("/customers", json=first), 201)
    second = accepted(await customers.post("/customers", json=new_customer()), 201)
    refused(await customers.patch(f"/customers/{second['id']}", json={"email": first["email"]}), 409, "email_taken")


async def test_delete_removes_the_row(customers, query):
    created = accepted(await customers.post("/customers", json=new_customer()), 201)
    refused(await customers.delete(f"/customers/{created['id']}", headers={"If-Match": '"7"'}), 412)
    body = accepted(await customers.delete(f"/customers/{created['id']}", headers={"If-Match": '"1"'}))
    assert body["version"] is None
    assert query("customers", "select 1 from customers where id = %s", (created["id"],)) == []
    refused(await customers.delete(f"/customers/{created['id']}"), 404, "customer_not_found")


async def test_unknown_customer_is_404(customers):
    refused(await customers.patch(f"/customers/{uuid.uuid4()}", json={"name": "x"}), 404, "customer_not_found")
    refused(await customers.patch("/customers/not-a-uuid", json={"name": "x"}), 422)


async def test_commands_need_the_bearer_token(customers):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = await customers.post("/customers", json=new_customer(), headers=headers)
        refused(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await customers.get("/healthz", headers={"Authorization": ""})).status_code == 200
    assert (await customers.get("/readyz", headers={"Authorization": ""})).status_code == 200


async def test_only_health_probes_answer_get(customers):
    created = accepted(await customers.post("/customers", json=new_customer()), 201)
    refused(await customers.get(f"/customers/{created['id']}"), 405)
    refused(await customers.get("/customers"), 405)
