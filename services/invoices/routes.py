"""Commands of the invoices service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from fastapi import APIRouter
from starlette.responses import Response

from services.common.app import UPDATE_RESPONSES, CommandResult
from services.common.commands import Written
from services.common.deps import CommandDep, IfMatch
from services.common.ids import new_id
from services.common.tx import Tx
from services.invoices import repository
from services.invoices.domain import check_due_date
from services.invoices.models import InvoiceCreate

router = APIRouter(prefix="/invoices", tags=["invoices"], responses=UPDATE_RESPONSES)


@router.post("", status_code=201, response_model=CommandResult)
async def issue_invoice(body: InvoiceCreate, cmd: CommandDep) -> Response:
    """Issue an invoice for an order; an order has at most one invoice that is not void."""
    # Today where it is earliest (UTC-12): no client is refused a due date that is today for them.
    check_due_date(body.due_date, (datetime.now(UTC) - timedelta(hours=12)).date())

    async def work(tx: Tx) -> Written:
        invoice_id = new_id()
        repository.insert(tx, invoice_id, body)
        return Written(invoice_id, 1, status=201)

    return await cmd.run(work, body)


@router.post("/{invoice_id}/pay", response_model=CommandResult)
async def pay_invoice(invoice_id: UUID, cmd: CommandDep, expected: IfMatch) -> Response:
    """issued -> paid."""

    async def work(tx: Tx) -> Written:
        invoice = await repository.load(tx, invoice_id)
        version = invoice.pay(expected)
        repository.close(tx, invoice_id, "paid", version)
        return Written(invoice_id, version)

    return await cmd.run(work, expected_version=expected)


@router.post("/{invoice_id}/void", response_model=CommandResult)
async def void_invoice(invoice_id: UUID, cmd: CommandDep, expected: IfMatch) -> Response:
    """issued -> void; the order may then be invoiced again."""

    async def work(tx: Tx) -> Written:
        invoice = await repository.load(tx, invoice_id)
        version = invoice.void(expected)
        repository.close(tx, invoice_id, "void", version)
        return Written(invoice_id, version)

    return await cmd.run(work, expected_version=expected)
