"""Schemathesis against each service's OpenAPI document: no input, valid or not, gets a 5xx.

The documents come from the app factories (building an app touches no database); the cases run
against the services as real uvicorn processes on a real Postgres.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from services.customers.main import create_app as customers_app
from services.inventory.main import create_app as inventory_app
from services.invoices.main import create_app as invoices_app
from services.orders.main import create_app as orders_app

from .conftest import AUTH

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

customers = schemathesis.openapi.from_dict(customers_app().openapi())
orders = schemathesis.openapi.from_dict(orders_app().openapi())
invoices = schemathesis.openapi.from_dict(invoices_app().openapi())
inventory = schemathesis.openapi.from_dict(inventory_app().openapi())


def no_server_error(case, base_url: str) -> None:
    response = case.call(base_url=base_url, headers=AUTH)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )


@customers.parametrize()
@FUZZ
def test_customers_never_answer_5xx(case, running_services):
    no_server_error(case, running_services["customers"])


@orders.parametrize()
@FUZZ
def test_orders_never_answer_5xx(case, running_services):
    no_server_error(case, running_services["orders"])


@invoices.parametrize()
@FUZZ
def test_invoices_never_answer_5xx(case, running_services):
    no_server_error(case, running_services["invoices"])


@inventory.parametrize()
@FUZZ
def test_inventory_never_answer_5xx(case, running_services):
    no_server_error(case, running_services["inventory"])
