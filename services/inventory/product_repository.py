"""SQL of the product aggregate: plain rows."""

from __future__ import annotations

from uuid import UUID

from services.common.tx import Tx
from services.inventory.domain import Product, ProductNotFoundError, SkuTakenError
from services.inventory.models import ProductCreate, ProductUpdate

INSERT = """
insert into products (id, sku, name, list_price, currency)
values (%(id)s, %(sku)s, %(name)s, %(list_price)s, %(currency)s)
"""
READ = "select version, retired_at is not null from products where id = %s"
UPDATE = """
update products
set name = coalesce(%(name)s, name), list_price = coalesce(%(list_price)s, list_price),
    version = %(version)s, updated_at = now()
where id = %(id)s and version = %(version)s - 1
returning 1
"""
RETIRE = """
update products set retired_at = now(), version = %(version)s, updated_at = now()
where id = %(id)s and version = %(version)s - 1
returning 1
"""
"""Each guarded (`Tx.write(..., guard=True)`): it names the version the command read."""

CONSTRAINT_ERRORS = {"products_sku_key": SkuTakenError}


def insert(tx: Tx, product_id: UUID, data: ProductCreate) -> None:
    tx.write(INSERT, {"id": product_id, **data.model_dump()})


async def load(tx: Tx, product_id: UUID) -> Product:
    row = await tx.read(READ, (product_id,))
    if row is None:
        raise ProductNotFoundError(f"no product has id {product_id}")
    return Product(product_id, *row)


def update(tx: Tx, product_id: UUID, changes: ProductUpdate, version: int) -> None:
    tx.write(UPDATE, {"id": product_id, "version": version, **changes.model_dump()}, guard=True)


def retire(tx: Tx, product_id: UUID, version: int) -> None:
    tx.write(RETIRE, {"id": product_id, "version": version}, guard=True)
