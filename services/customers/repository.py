"""SQL of the customer aggregate."""

from __future__ import annotations

from uuid import UUID

from services.common.tx import Tx

from services.customers.domain import Customer, CustomerNotFoundError, EmailTakenError
from services.customers.models import CustomerCreate, CustomerUpdate

INSERT = "insert into customers (id, email, name, country) values (%(id)s, %(email)s, %(name)s, %(country)s)"
LOCK = "select version from customers where id = %s for update"
UPDATE = """
update customers
set email = coalesce(%(email)s, email), name = coalesce(%(name)s, name),
    country = coalesce(%(country)s, country), version = %(version)s, updated_at = now()
where id = %(id)s
"""
DELETE = "delete from customers where id = %s"

CONSTRAINT_ERRORS = {"customers_email_key": EmailTakenError}


def insert(tx: Tx, customer_id: UUID, data: CustomerCreate) -> None:
    tx.write(INSERT, {"id": customer_id, **data.model_dump()})


async def lock(tx: Tx, customer_id: UUID) -> Customer:
    row = await tx.read(LOCK, (customer_id,))
    if row is None:
        raise CustomerNotFoundError(f"no customer has id {customer_id}")
    return Customer(customer_id, row[0])


def update(tx: Tx, customer_id: UUID, changes: CustomerUpdate, version: int) -> None:
    tx.write(UPDATE, {"id": customer_id, "version": version, **changes.model_dump()})


def delete(tx: Tx, customer_id: UUID) -> None:
    tx.write(DELETE, (customer_id,))
