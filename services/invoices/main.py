"""The invoices service app: `uvicorn --factory services.invoices.main:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.app import build_app
from services.invoices import repository, routes
from services.invoices.config import InvoicesSettings


def create_app(settings: InvoicesSettings | None = None) -> FastAPI:
    return build_app(
        settings or InvoicesSettings(),
        [routes.router],
        [("common", "services.common"), ("invoices", "services.invoices")],
        repository.CONSTRAINT_ERRORS,
    )
