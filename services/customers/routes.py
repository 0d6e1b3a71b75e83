"""Commands of the customers service."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from starlette.responses import Response

from services.common.app import UPDATE_RESPONSES, CommandResult
from services.common.commands import Written
from services.common.deps import CommandDep, IfMatch
from services.common.ids import new_id
from services.common.tx import Tx
from services.customers import repository
from services.customers.models import CustomerCreate, CustomerUpdate

router = APIRouter(prefix="/customers", tags=["customers"])


@router.post("", status_code=201, response_model=CommandResult, responses={409: UPDATE_RESPONSES[409]})
async def register_customer(body: CustomerCreate, cmd: CommandDep) -> Response:
    """Register a customer; the email address must not belong to another customer."""

    async def work(tx: Tx) -> Written:
        customer_id = new_id()
        repository.insert(tx, customer_id, body)
        return Written(customer_id, 1, status=201)

    return await cmd.run(work, body)


@router.patch("/{customer_id}", response_model=CommandResult, responses=UPDATE_RESPONSES)
async def update_customer(customer_id: UUID, body: CustomerUpdate, cmd: CommandDep, expected: IfMatch) -> Response:
    """Change some of a customer's fields."""

    async def work(tx: Tx) -> Written:
        customer = await repository.load(tx, customer_id)
        version = customer.update(expected)
        repository.update(tx, customer_id, body, version)
        return Written(customer_id, version)

    return await cmd.run(work, body, expected_version=expected)


@router.delete("/{customer_id}", response_model=CommandResult, responses=UPDATE_RESPONSES)
async def delete_customer(customer_id: UUID, cmd: CommandDep, expected: IfMatch) -> Response:
    """Delete a customer for good; `version` in the answer is null."""

    async def work(tx: Tx) -> Written:
        customer = await repository.load(tx, customer_id)
        customer.delete(expected)
        repository.delete(tx, customer)
        return Written(customer_id, None)

    return await cmd.run(work, expected_version=expected)
