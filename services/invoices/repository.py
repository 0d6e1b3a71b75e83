"""SQL of the invoice aggregate."""

from __future__ import annotations

from uuid import UUID

from services.common.tx import Tx
from services.invoices.domain import ISSUED, Invoice, InvoiceNotFoundError, OrderAlreadyInvoicedError
from services.invoices.models import InvoiceCreate

INSERT = """
insert into invoices (id, order_id, amount, currency, due_date, document_url, status)
values (%(id)s, %(order_id)s, %(amount)s, %(currency)s, %(due_date)s, %(document_url)s, %(status)s)
"""
READ = "select status, version from invoices where id = %s"
CLOSE = """
update invoices
set status = %(status)s, version = %(version)s, updated_at = now(),
    paid_at = case when %(status)s = 'paid' then now() else paid_at end,
    voided_at = case when %(status)s = 'void' then now() else voided_at end
where id = %(id)s and version = %(version)s - 1
returning 1
"""
"""Guarded (`Tx.write(..., guard=True)`): it names the version the command read."""

CONSTRAINT_ERRORS = {"invoices_open_per_order": OrderAlreadyInvoicedError}


def insert(tx: Tx, invoice_id: UUID, data: InvoiceCreate) -> None:
    tx.write(INSERT, {"id": invoice_id, "status": ISSUED, **data.model_dump()})


async def load(tx: Tx, invoice_id: UUID) -> Invoice:
    row = await tx.read(READ, (invoice_id,))
    if row is None:
        raise InvoiceNotFoundError(f"no invoice has id {invoice_id}")
    return Invoice(invoice_id, *row)


def close(tx: Tx, invoice_id: UUID, status: str, version: int) -> None:
    tx.write(CLOSE, {"id": invoice_id, "status": status, "version": version}, guard=True)
