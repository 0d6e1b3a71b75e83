"""Settings: one prefix per service, the stack's defaults, and no development secrets in production."""

from __future__ import annotations

import os

import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError

from cdc import postgres
from cdc.config import StackSettings
from services import runner
from services.common.config import DEV_SECRET


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    """Only what each test sets: not the test ports and tokens other fixtures put in the environment."""
    for key in list(os.environ):
        if key.startswith("MIRADOR_") and key.split("_")[1].lower() in runner.SETTINGS:
            monkeypatch.delenv(key)


@pytest.mark.parametrize("service", list(runner.SETTINGS))
def test_the_default_dsn_is_the_one_the_stack_bootstraps(service, monkeypatch):
    for key in (
        "MIRADOR_PG_DSN",
        "MIRADOR_PG_HOST",
        "MIRADOR_PG_PORT",
        "MIRADOR_PG_SERVICE_PASSWORD",
        f"MIRADOR_{service.upper()}_DSN",
    ):
        monkeypatch.delenv(key, raising=False)
    ours = conninfo_to_dict(runner.SETTINGS[service]().database_dsn)
    stack = conninfo_to_dict(postgres.service_dsn(StackSettings(), service))
    keys = ("host", "port", "dbname", "user", "password")
    assert {k: str(ours[k]) for k in keys} == {k: str(stack[k]) for k in keys}


def test_each_service_reads_its_own_prefix(monkeypatch):
    monkeypatch.setenv("MIRADOR_ORDERS_PORT", "9002")
    monkeypatch.setenv("MIRADOR_ORDERS_TOKEN", "s3cret")
    monkeypatch.setenv("MIRADOR_PG_PORT", "5999")
    orders, invoices = runner.SETTINGS["orders"](), runner.SETTINGS["invoices"]()
    assert (orders.port, orders.token.get_secret_value(), orders.pg_port) == (9002, "s3cret", 5999)
    assert (invoices.port, invoices.token.get_secret_value(), invoices.pg_port) == (8103, DEV_SECRET, 5999)
    assert [runner.SETTINGS[n]().port for n in ("customers", "inventory")] == [8101, 8104]


def test_production_refuses_development_secrets(monkeypatch):
    monkeypatch.setenv("MIRADOR_ENV", "production")
    for key in ("MIRADOR_CUSTOMERS_TOKEN", "MIRADOR_CUSTOMERS_DSN", "MIRADOR_PG_SERVICE_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValidationError, match="MIRADOR_CUSTOMERS_TOKEN is the development default"):
        runner.SETTINGS["customers"]()
    monkeypatch.setenv("MIRADOR_CUSTOMERS_TOKEN", "a-real-token")
    with pytest.raises(ValidationError, match="MIRADOR_PG_SERVICE_PASSWORD is the development default"):
        runner.SETTINGS["customers"]()
    monkeypatch.setenv("MIRADOR_PG_SERVICE_PASSWORD", "a-real-password")
    assert runner.SETTINGS["customers"]().env == "production"
