"""SQL of the customer aggregate."""

from __future__ import annotations

from uuid import UUID

from services.common.tx import Tx
from services.customers.domain import Customer, CustomerNotFoundError, EmailTakenError
from services.customers.models import CustomerCreate, CustomerUpdate

INSERT = "insert into customers (id, email, name, country) values (%(id)s, %(email)s, %(name)s, %(country)s)"
READ = "select version from customers where id = %s"
UPDATE = """
update customers
set email = coalesce(%(email)s, email), name = coalesce(%(name)s, name),
    country = coalesce(%(country)s, country), version = %(version)s, updated_at = now()
where id = %(id)s and version = %(version)s - 1
returning 1
"""
DELETE = "delete from customers where id = %(id)s and version = %(version)s returning 1"
"""Each guarded (`Tx.write(..., guard=True)`): it names the version the command read."""

CONSTRAINT_ERRORS = {"customers_email_key": EmailTakenError}


def insert(tx: Tx, customer_id: UUID, data: CustomerCreate) -> None:
    tx.write(INSERT, {"id": customer_id, **data.model_dump()})


async def load(tx: Tx, customer_id: UUID) -> Customer:
    row = await tx.read(READ, (customer_id,))
    if row is None:
        raise CustomerNotFoundError(f"no customer has id {customer_id}")
    return Customer(customer_id, row[0])


def update(tx: Tx, customer_id: UUID, changes: CustomerUpdate, version: int) -> None:
    tx.write(UPDATE, {"id": customer_id, "version": version, **changes.model_dump()}, guard=True)


def delete(tx: Tx, customer: Customer) -> None:
    tx.write(DELETE, {"id": customer.id, "version": customer.version}, guard=True)
