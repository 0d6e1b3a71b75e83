"""The inventory service app: `uvicorn --factory services.inventory.main:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.app import build_app
from services.inventory import product_repository, routes, stock_repository
from services.inventory.config import InventorySettings


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    return build_app(
        settings or InventorySettings(),
        [routes.stock_router, routes.router],
        [("common", "services.common"), ("inventory", "services.inventory")],
        product_repository.CONSTRAINT_ERRORS | stock_repository.CONSTRAINT_ERRORS,
    )
