"""Fixtures over real Postgres: each service in-process (httpx over ASGI) and as real uvicorn processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import psycopg
import pytest

from cdc import postgres
from services import runner
from services.common.config import ServiceSettings
from tests.ports import free_ports

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def dsns(stack_settings) -> dict[str, str]:
    return {name: postgres.service_dsn(stack_settings, name) for name in runner.SETTINGS}


@pytest.fixture(scope="session")
def query(dsns) -> Callable[..., list[tuple]]:
    """Run SQL in a service's database, as its owner role, and return the rows."""

    def run(service: str, statement: str, params: tuple | dict = ()) -> list[tuple]:
        with psycopg.connect(dsns[service], autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    return run


def settings_for(service: str, dsns: dict[str, str], **overrides) -> ServiceSettings:
    return runner.SETTINGS[service](dsn=dsns[service], token=TOKEN, pool_max_size=8, **overrides)


async def _client(settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    module = __import__(f"services.{settings.service}.main", fromlist=["create_app"])
    app = module.create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as client:
            yield client


@pytest.fixture(scope="module")
async def customers(dsns) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings_for("customers", dsns)):
        yield client


@pytest.fixture(scope="module")
async def orders(dsns) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings_for("orders", dsns)):
        yield client


@pytest.fixture(scope="module")
async def invoices(dsns) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings_for("invoices", dsns)):
        yield client


@pytest.fixture(scope="module")
async def inventory(dsns) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings_for("inventory", dsns, stock_snapshot_every=5)):
        yield client


@pytest.fixture(scope="session")
def service_env(dsns) -> Iterator[dict[str, str]]:
    """Environment naming each service's test port, database and token, set for this process too."""
    env = {}
    for name, port in zip(runner.SETTINGS, free_ports(len(runner.SETTINGS)), strict=True):
        prefix = f"MIRADOR_{name.upper()}_"
        env |= {
            f"{prefix}PORT": str(port),
            f"{prefix}DSN": dsns[name],
            f"{prefix}TOKEN": TOKEN,
            f"{prefix}POOL_MAX_SIZE": "12",
        }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def running_services(service_env, tmp_path_factory) -> Iterator[dict[str, str]]:
    """All four services as real uvicorn processes (2 workers each); their base URLs by name."""
    home = tmp_path_factory.mktemp("mirador-home")
    names = list(runner.SETTINGS)
    try:
        started = runner.up(names, workers=2, home=home)
        yield {s.name: s.url for s in started}
    finally:
        runner.down(names, home=home)
