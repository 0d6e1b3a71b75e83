"""The customers service app: `uvicorn --factory services.customers.main:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.app import build_app
from services.customers import repository, routes
from services.customers.config import CustomersSettings


def create_app(settings: CustomersSettings | None = None) -> FastAPI:
    return build_app(
        settings or CustomersSettings(),
        [routes.router],
        [("common", "services.common"), ("customers", "services.customers")],
        repository.CONSTRAINT_ERRORS,
    )
