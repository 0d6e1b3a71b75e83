"""Invoices: issued for an order (one open invoice per order), paid or voided."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest

from .helpers import accepted, invalid_fields, refused

pytestmark = pytest.mark.anyio


def new_invoice(order_id: str | None = None, **fields) -> dict:
    return {
        "order_id": order_id or str(uuid.uuid4()),
        "amount": "119.97",
        "currency": "EUR",
        "due_date": str(date.today() + timedelta(days=30)),
        "document_url": "https://docs.example.com/invoices/1.pdf",
        **fields,
    }


async def test_issue_writes_the_invoice_without_asking_the_orders_service(invoices, query):
    data = new_invoice()  # an order id the invoices service has never seen: it does not check
    body = accepted(await invoices.post("/invoices", json=data), 201)
    assert query(
        "invoices", "select order_id::text, amount, status, version from invoices where id = %s", (body["id"],)
    ) == [(data["order_id"], Decimal("119.97"), "issued", 1)]


async def test_an_order_has_one_open_invoice_until_it_is_voided(invoices):
    order_id = str(uuid.uuid4())
    first = accepted(await invoices.post("/invoices", json=new_invoice(order_id)), 201)
    refused(await invoices.post("/invoices", json=new_invoice(order_id)), 409, "order_already_invoiced")
    accepted(await invoices.post(f"/invoices/{first['id']}/void", headers={"If-Match": '"1"'}))
    accepted(await invoices.post("/invoices", json=new_invoice(order_id)), 201)


async def test_pay_then_neither_pay_nor_void_again(invoices, query):
    invoice = accepted(await invoices.post("/invoices", json=new_invoice()), 201)
    assert accepted(await invoices.post(f"/invoices/{invoice['id']}/pay"))["version"] == 2
    refused(await invoices.post(f"/invoices/{invoice['id']}/pay"), 409, "invoice_not_open")
    refused(await invoices.post(f"/invoices/{invoice['id']}/void"), 409, "invoice_not_open")
    assert query("invoices", "select status, paid_at is not null from invoices where id = %s", (invoice["id"],)) == [
        ("paid", True)
    ]


async def test_invalid_invoices(invoices):
    assert invalid_fields(
        await invoices.post(
            "/invoices", json=new_invoice(amount="0", currency="euro", document_url="ftp://x", due_date="someday")
        )
    ) == {"body.amount", "body.currency", "body.document_url", "body.due_date"}
    past = new_invoice(due_date=str(date.today() - timedelta(days=2)))
    refused(await invoices.post("/invoices", json=past), 409, "due_date_in_past")


async def test_unknown_or_stale_invoice(invoices):
    refused(await invoices.post(f"/invoices/{uuid.uuid4()}/pay"), 404, "invoice_not_found")
    invoice = accepted(await invoices.post("/invoices", json=new_invoice()), 201)
    refused(await invoices.post(f"/invoices/{invoice['id']}/void", headers={"If-Match": '"2"'}), 412)


async def test_pay_and_void_answer_404_and_412(invoices):
    refused(await invoices.post(f"/invoices/{uuid.uuid4()}/void"), 404, "invoice_not_found")
    invoice = accepted(await invoices.post("/invoices", json=new_invoice()), 201)
    refused(await invoices.post(f"/invoices/{invoice['id']}/pay", headers={"If-Match": '"3"'}), 412)
    accepted(await invoices.post(f"/invoices/{invoice['id']}/pay", headers={"If-Match": '"1"'}))
