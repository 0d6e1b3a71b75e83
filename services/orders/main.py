"""The orders service app: `uvicorn --factory services.orders.main:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.app import build_app
from services.orders import repository, routes
from services.orders.config import OrdersSettings


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    return build_app(
        settings or OrdersSettings(),
        [routes.router],
        [("common", "services.common"), ("orders", "services.orders")],
        repository.CONSTRAINT_ERRORS,
    )
