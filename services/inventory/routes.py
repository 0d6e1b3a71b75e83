"""Commands of the inventory service: the catalogue, and stock as events."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from starlette.responses import Response

from services.common.app import UPDATE_RESPONSES, CommandResult
from services.common.commands import Written
from services.common.deps import CommandDep, IfMatch, SettingsDep
from services.common.ids import new_id
from services.common.tx import Tx
from services.inventory import product_repository as products
from services.inventory import stock_repository as stock
from services.inventory.models import ProductCreate, ProductUpdate, StockChange

router = APIRouter(prefix="/products", tags=["products"], responses=UPDATE_RESPONSES)
stock_router = APIRouter(prefix="/products/{product_id}/stock", tags=["stock"], responses=UPDATE_RESPONSES)


@router.post("", status_code=201, response_model=CommandResult)
async def register_product(body: ProductCreate, cmd: CommandDep) -> Response:
    """Add a product to the catalogue; its SKU must be new."""

    async def work(tx: Tx) -> Written:
        product_id = new_id()
        products.insert(tx, product_id, body)
        return Written(product_id, 1, status=201)

    return await cmd.run(work, body)


@router.patch("/{product_id}", response_model=CommandResult)
async def change_product(product_id: UUID, body: ProductUpdate, cmd: CommandDep, expected: IfMatch) -> Response:
    """Rename or reprice a product that is not retired."""

    async def work(tx: Tx) -> Written:
        product = await products.load(tx, product_id)
        version = product.change(expected)
        products.update(tx, product_id, body, version)
        return Written(product_id, version)

    return await cmd.run(work, body, expected_version=expected)


@router.post("/{product_id}/retire", response_model=CommandResult)
async def retire_product(product_id: UUID, cmd: CommandDep, expected: IfMatch) -> Response:
    """Retire a product: it stays in the catalogue, takes no new stock and no changes."""

    async def work(tx: Tx) -> Written:
        product = await products.load(tx, product_id)
        version = product.retire(expected)
        products.retire(tx, product_id, version)
        return Written(product_id, version)

    return await cmd.run(work, expected_version=expected)


@stock_router.post("/increase", response_model=CommandResult)
async def increase_stock(product_id: UUID, body: StockChange, cmd: CommandDep, settings: SettingsDep) -> Response:
    """Record stock received: appends a StockIncreased event. `version` is the stream's version."""
    return await _change_stock(product_id, body, cmd, settings, increase=True)


@stock_router.post("/decrease", response_model=CommandResult)
async def decrease_stock(product_id: UUID, body: StockChange, cmd: CommandDep, settings: SettingsDep) -> Response:
    """Record stock sold or lost: appends a StockDecreased event; refused (409) below zero."""
    return await _change_stock(product_id, body, cmd, settings, increase=False)


async def _change_stock(
    product_id: UUID, body: StockChange, cmd: CommandDep, settings: SettingsDep, increase: bool
) -> Response:
    command_id = cmd.key or str(new_id())

    async def work(tx: Tx) -> Written:
        current = await stock.load(tx, product_id)
        change = current.increase if increase else current.decrease
        event = change(body.quantity, body.reason, command_id)
        stock.append(tx, event, current.apply(event), settings.stock_snapshot_every)
        return Written(product_id, event.version, extra={"event": event.event_type})

    return await cmd.run(work, body, attempts=settings.stock_append_attempts)
