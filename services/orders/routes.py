"""Commands of the orders service."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from starlette.responses import Response

from services.common.app import UPDATE_RESPONSES, CommandResult
from services.common.commands import Written
from services.common.deps import CommandDep, IfMatch
from services.common.ids import new_id
from services.common.tx import Tx
from services.orders import repository
from services.orders.domain import CANCELLED, PAID, SHIPPED
from services.orders.models import OrderCancel, OrderCreate, OrderLineCreate

router = APIRouter(prefix="/orders", tags=["orders"], responses=UPDATE_RESPONSES)

LineNo = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", status_code=201, response_model=CommandResult)
async def place_order(body: OrderCreate, cmd: CommandDep) -> Response:
    """Place an order with its lines; it starts out `placed` at version 1."""

    async def work(tx: Tx) -> Written:
        order_id = new_id()
        repository.insert(tx, order_id, body)
        return Written(order_id, 1, status=201)

    return await cmd.run(work, body)


@router.post("/{order_id}/lines", status_code=201, response_model=CommandResult)
async def add_line(order_id: UUID, body: OrderLineCreate, cmd: CommandDep, expected: IfMatch) -> Response:
    """Add a line to a placed order; the answer carries the new line's `line_no`."""

    async def work(tx: Tx) -> Written:
        order = await repository.load(tx, order_id)
        line_no, version = order.add_line(expected)
        repository.add_line(tx, order, line_no, body, version)
        return Written(order_id, version, status=201, extra={"line_no": line_no})

    return await cmd.run(work, body, expected_version=expected)


@router.delete("/{order_id}/lines/{line_no}", response_model=CommandResult)
async def remove_line(order_id: UUID, line_no: LineNo, cmd: CommandDep, expected: IfMatch) -> Response:
    """Remove a line from a placed order; its last line cannot go."""

    async def work(tx: Tx) -> Written:
        order = await repository.load(tx, order_id)
        version = order.remove_line(line_no, expected)
        repository.remove_line(tx, order, line_no, version)
        return Written(order_id, version)

    return await cmd.run(work, expected_version=expected)


async def _move(
    order_id: UUID, status: str, cmd: CommandDep, expected: int | None, body: OrderCancel | None = None
) -> Response:
    async def work(tx: Tx) -> Written:
        order = await repository.load(tx, order_id)
        version = order.move_to(status, expected)
        repository.move(tx, order_id, status, version, body.reason if body else None)
        return Written(order_id, version)

    return await cmd.run(work, body, expected_version=expected)


@router.post("/{order_id}/pay", response_model=CommandResult)
async def pay_order(order_id: UUID, cmd: CommandDep, expected: IfMatch) -> Response:
    """placed -> paid."""
    return await _move(order_id, PAID, cmd, expected)


@router.post("/{order_id}/ship", response_model=CommandResult)
async def ship_order(order_id: UUID, cmd: CommandDep, expected: IfMatch) -> Response:
    """paid -> shipped."""
    return await _move(order_id, SHIPPED, cmd, expected)


@router.post("/{order_id}/cancel", response_model=CommandResult)
async def cancel_order(order_id: UUID, cmd: CommandDep, expected: IfMatch, body: OrderCancel | None = None) -> Response:
    """placed or paid -> cancelled, with an optional reason."""
    return await _move(order_id, CANCELLED, cmd, expected, body)
