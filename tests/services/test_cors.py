"""CORS: the read API's page (another origin) may send commands; a page from anywhere else may not."""

from __future__ import annotations

import uuid

import pytest

from services import runner

from .helpers import accepted

pytestmark = pytest.mark.anyio

PAGE = "http://127.0.0.1:8100"
ELSEWHERE = "http://evil.example"


def preflight(origin: str) -> dict:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def test_the_pages_preflight_is_answered_without_a_token(orders):
    response = await orders.options("/orders", headers={**preflight(PAGE), "Authorization": ""})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == PAGE
    assert {"POST", "PATCH", "DELETE"} <= set(response.headers["access-control-allow-methods"].split(", "))
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "if-match"} <= allowed


async def test_a_command_from_the_page_is_readable_with_its_etag(orders):
    order = {
        "customer_id": str(uuid.uuid4()),
        "currency": "EUR",
        "lines": [{"product_id": str(uuid.uuid4()), "quantity": 1, "unit_price": "9.99"}],
    }
    response = await orders.post("/orders", json=order, headers={"Origin": PAGE})
    accepted(response, 201)
    assert response.headers["access-control-allow-origin"] == PAGE
    assert "etag" in response.headers["access-control-expose-headers"].lower()


async def test_a_refused_token_still_tells_the_page_why(orders):
    response = await orders.post("/orders", json={}, headers={"Origin": PAGE, "Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == PAGE


async def test_another_origin_is_refused(orders):
    response = await orders.options("/orders", headers=preflight(ELSEWHERE))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    posted = await orders.post("/orders", json={}, headers={"Origin": ELSEWHERE})
    assert "access-control-allow-origin" not in posted.headers


def test_the_origins_are_a_shared_setting(monkeypatch):
    monkeypatch.setenv("MIRADOR_CORS_ORIGINS", '["https://shop.example.com"]')
    assert {name: settings().cors_origins for name, settings in runner.SETTINGS.items()} == {
        name: ["https://shop.example.com"] for name in runner.SETTINGS
    }
    monkeypatch.delenv("MIRADOR_CORS_ORIGINS")
    assert runner.SETTINGS["orders"]().cors_origins == [PAGE, "http://localhost:8100"]
